"""Who the agent is: signing in with Genesys, panel sessions, the signed sign-in state, and
the Genesys regions and hosts.
"""
