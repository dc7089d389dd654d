"""Dev mode: everything on one laptop (run), a session for scripts (session), and the mock
Genesys Cloud and mock model server (mocks). Production code never imports the mocks.
"""
