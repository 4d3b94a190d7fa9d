"""Every Prometheus metric OneGrid exports, named once. Labels are bounded: tenant,
department, category, level, reason, outcome, service, handler, queue — never an id."""
from prometheus_client import Counter, Histogram

EVENTS_RECEIVED = Counter("onegrid_intake_events_received_total",
                          "Department events received by intake, by outcome",
                          ["tenant", "department", "transport", "outcome"])
CASES_REGISTERED = Counter("onegrid_cases_registered_total", "Cases registered",
                           ["tenant", "department", "category"])
QUARANTINED = Counter("onegrid_intake_quarantined_total", "Events quarantined, by reason",
                      ["tenant", "department", "reason"])
WORK_ORDERS = Counter("onegrid_work_orders_dispatched_total", "Work orders put on a department's queue",
                      ["tenant", "department", "level", "reason"])
WORK_ORDER_ACTIONS = Counter("onegrid_work_order_actions_total", "Department actions on work orders",
                             ["tenant", "department", "action", "outcome"])
HANDLER_SECONDS = Histogram("onegrid_handler_duration_seconds", "Time in a message or HTTP handler",
                            ["service", "handler", "outcome"],
                            buckets=(.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5))
RETRIES = Counter("onegrid_handler_retries_total", "Messages sent to a retry tier after a handler failed",
                  ["tenant", "queue"])
DEAD_LETTERED = Counter("onegrid_handler_dead_lettered_total",
                        "Messages moved to a dead-letter queue after their last retry", ["tenant", "queue"])
