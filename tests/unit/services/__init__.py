"""Each service's use cases (onegrid/app) driven through in-memory fakes of the ports, and
the services' entrypoints with those fakes in place of their dependencies."""
