"""kybernetes: a container orchestrator in Python that speaks the Kubernetes API."""
