"""The Kubernetes side: API access (``kube``), waiting for a rollout (``rollout_wait``) and the
rollback handlers (``rollback``). Plain Python, no pytest: the plugin calls in, never the reverse."""
