"""Pure domain logic: no nameko, RabbitMQ or Redis here, so it is unit-tested directly."""
