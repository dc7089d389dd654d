"""The admin commands: the manifest, installing it into an org, the admin OAuth client, and
what agents need that install cannot change.
"""
