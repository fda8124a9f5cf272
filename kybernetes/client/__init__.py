"""The client library every component uses to talk to the API server:
an async API client, informers, rate-limited work queues and leader election."""

from kybernetes.api.errors import ApiError
from kybernetes.client.api import ApiClient
from kybernetes.client.informer import Informer, InformerFactory, add_object_handler, object_key
from kybernetes.client.leaderelection import LeaderElector
from kybernetes.client.protocols import Cache, Client, Informers, SharedInformer
from kybernetes.client.resources import Resource
from kybernetes.client.workqueue import WorkQueue, run_workers

__all__ = ["ApiClient", "ApiError", "Cache", "Client", "Informer", "InformerFactory", "Informers", "LeaderElector",
           "Resource", "SharedInformer", "WorkQueue", "add_object_handler", "object_key", "run_workers"]
