"""HTTP plumbing every route shares: connections and their deadlines, the server, headers,
request bodies, probes, metrics, and the panel page.
"""
