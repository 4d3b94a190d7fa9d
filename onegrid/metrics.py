"""Every Prometheus metric OneGrid exports, named once. Labels are bounded: tenant,
department, category, level, reason, outcome, service, handler, queue — never an id."""
from prometheus_client import Counter, Gauge, Histogram

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
SUPERVISIONS = Counter("onegrid_supervisions_total", "Deadlines passed (督办), by level and reason",
                       ["tenant", "level", "reason"])
CASES_CLOSED = Counter("onegrid_cases_closed_total", "Cases closed, fixed or not fixed",
                       ["tenant", "department", "category", "outcome"])
CASES_CLOSED_ON_TIME = Counter("onegrid_cases_closed_on_time_total", "Cases closed fixed with every deadline met",
                               ["tenant", "department", "category"])
TIMER_LAG = Histogram("onegrid_timer_lag_seconds", "How late a deadline timer fired after its due time", ["kind"],
                      buckets=(.05, .1, .25, .5, 1, 2, 5, 10, 30))

# -- scoring (issue 4): figures read from the tenant's scoring state when scraped -----------
GRID_COLOUR = Gauge("onegrid_grid_colour", "Grids per five-colour risk level", ["tenant", "colour"])
DEPARTMENT_CLOSURE_RATE = Gauge("onegrid_department_closure_rate",
                                "Share of the work orders a department received this month closed fixed",
                                ["tenant", "department"])
DEPARTMENT_ON_TIME_RATE = Gauge("onegrid_department_on_time_rate",
                                "Share of a department's work orders received this month resolved on time",
                                ["tenant", "department"])
SCORING_EVENTS = Counter("onegrid_scoring_events_total", "Lifecycle events applied by scoring, by outcome",
                         ["tenant", "outcome"])
COLOUR_CHANGES = Counter("onegrid_grid_colour_changes_total", "Grid colour changes announced",
                         ["tenant", "colour"])

# -- notify (issue 4) ----------------------------------------------------------------------
NOTIFICATIONS_SENT = Counter("onegrid_notifications_sent_total", "Notifications delivered", ["tenant", "channel"])
NOTIFICATIONS_FAILED = Counter("onegrid_notifications_failed_total", "Delivery attempts that failed",
                               ["tenant", "channel"])
NOTIFICATIONS_RETRIED = Counter("onegrid_notifications_retried_total", "Failed deliveries scheduled again",
                                ["tenant", "channel"])
NOTIFICATIONS_PARKED = Counter("onegrid_notifications_parked_total",
                               "Notifications parked after their last attempt (or a permanent error)",
                               ["tenant", "channel"])
NOTIFICATION_SECONDS = Histogram("onegrid_notification_delivery_seconds",
                                 "From the lifecycle event's arrival to the notification's delivery", ["channel"],
                                 buckets=(.05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 900))
