"""Dev-mode stand-ins for the outside world: a mock Genesys Cloud and a mock model server.

They speak the real protocols so that dev mode and the tests exercise the real
client code. Production modules never import this package.
"""
