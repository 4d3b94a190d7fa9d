"""Every Prometheus metric OneGrid exports, named once. Labels are bounded: tenant,
department, category, level, reason, outcome, service, handler, queue — never an id."""

from prometheus_client import Counter, Gauge, Histogram

EVENTS_RECEIVED = Counter(
    "onegrid_intake_events_received_total",
    "Department events received by intake, by outcome",
    ["tenant", "department", "transport", "outcome"],
)
CASES_REGISTERED = Counter("onegrid_cases_registered_total", "Cases registered", ["tenant", "department", "category"])
# bounded: the event types and versions are the contracts' (a reviewed, finite list)
CONTRACT_EVENTS = Counter(
    "onegrid_contract_events_total",
    "Events intake accepted (new or resent), by contract version and sending department",
    ["tenant", "department", "event_type", "version"],
)
QUARANTINED = Counter(
    "onegrid_intake_quarantined_total", "Events quarantined, by reason", ["tenant", "department", "reason"]
)
WORK_ORDERS = Counter(
    "onegrid_work_orders_dispatched_total",
    "Work orders put on a department's queue",
    ["tenant", "department", "level", "reason"],
)
WORK_ORDER_ACTIONS = Counter(
    "onegrid_work_order_actions_total",
    "Department actions on work orders",
    ["tenant", "department", "action", "outcome"],
)
HANDLER_SECONDS = Histogram(
    "onegrid_handler_duration_seconds",
    "Time in a message or HTTP handler",
    ["service", "handler", "outcome"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
RETRIES = Counter(
    "onegrid_handler_retries_total", "Messages sent to a retry tier after a handler failed", ["tenant", "queue"]
)
DEAD_LETTERED = Counter(
    "onegrid_handler_dead_lettered_total",
    "Messages moved to a dead-letter queue after their last retry",
    ["tenant", "queue"],
)
DUPLICATES = Counter(
    "onegrid_duplicates_total",
    "Likely duplicates: auto_merged, suggested, confirmed, dismissed, unmerged",
    ["tenant", "outcome"],
)
SUPERVISIONS = Counter(
    "onegrid_supervisions_total", "Deadlines passed (督办), by level and reason", ["tenant", "level", "reason"]
)
OFFICE_ITEMS = Counter(
    "onegrid_office_escalations_total",
    "Escalation items (督办单) by the receiving level and what became of them: received, "
    "acknowledged, acted, missed (a deadline passed and the case went up, or stayed flagged at the top)",
    ["tenant", "level", "outcome"],
)
ARRIVALS = Counter(
    "onegrid_arrivals_total",
    "Grid workers' on-site arrivals against the arrival deadline: on_time, late (checked in after it), "
    "missed (the deadline passed with no check-in; a later check-in also counts late)",
    ["tenant", "outcome"],
)
CASES_CLOSED = Counter(
    "onegrid_cases_closed_total",
    "Cases closed, fixed or not fixed, whatever closed them (the citizen, no answer, the command centre)",
    ["tenant", "category", "outcome"],
)
CASES_CLOSED_ON_TIME = Counter(
    "onegrid_cases_closed_on_time_total",
    "Cases closed fixed with every deadline met",
    ["tenant", "category"],
)
# by the HANDLING department: a case with parts at two departments counts once for each; the
# denominator is what they were sent (onegrid_work_orders_dispatched_total by department)
DEPARTMENT_CASES_CLOSED = Counter(
    "onegrid_department_cases_closed_total",
    "Cases closed that a department handled (its part not returned or cancelled), by outcome",
    ["tenant", "department", "outcome"],
)
DEPARTMENT_CASES_CLOSED_ON_TIME = Counter(
    "onegrid_department_cases_closed_on_time_total",
    "Cases closed fixed on time that a department handled",
    ["tenant", "department"],
)
TIMER_LAG = Histogram(
    "onegrid_timer_lag_seconds",
    "How late a deadline timer fired after its due time",
    ["kind"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
)

# -- scoring (issue 4): figures read from the tenant's scoring state when scraped -----------
GRID_COLOUR = Gauge("onegrid_grid_colour", "Grids per five-colour risk level", ["tenant", "colour"])
DEPARTMENT_CLOSURE_RATE = Gauge(
    "onegrid_department_closure_rate",
    "Share of the work orders a department received this month closed fixed",
    ["tenant", "department"],
)
DEPARTMENT_ON_TIME_RATE = Gauge(
    "onegrid_department_on_time_rate",
    "Share of a department's work orders received this month resolved on time",
    ["tenant", "department"],
)
SCORING_EVENTS = Counter(
    "onegrid_scoring_events_total", "Lifecycle events applied by scoring, by outcome", ["tenant", "outcome"]
)
COLOUR_CHANGES = Counter("onegrid_grid_colour_changes_total", "Grid colour changes announced", ["tenant", "colour"])

# -- notify (issue 4) ----------------------------------------------------------------------
NOTIFICATIONS_SENT = Counter("onegrid_notifications_sent_total", "Notifications delivered", ["tenant", "channel"])
NOTIFICATIONS_FAILED = Counter(
    "onegrid_notifications_failed_total", "Delivery attempts that failed", ["tenant", "channel"]
)
NOTIFICATIONS_RETRIED = Counter(
    "onegrid_notifications_retried_total", "Failed deliveries scheduled again", ["tenant", "channel"]
)
SMS_REPLIES = Counter(
    "onegrid_sms_replies_total",
    "Citizens' SMS replies received, by what became of them (matched, ambiguous, unmatched)",
    ["tenant", "outcome"],
)
NOTIFICATIONS_PARKED = Counter(
    "onegrid_notifications_parked_total",
    "Notifications parked after their last attempt (or a permanent error)",
    ["tenant", "channel"],
)
NOTIFICATION_SECONDS = Histogram(
    "onegrid_notification_delivery_seconds",
    "From the lifecycle event's arrival to the notification's delivery",
    ["channel"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900),
)
# a working-day deadline counted over a day whose year the holiday data (chinesecalendar) does
# not know: decided by the weekends alone until the package or the tenant's `calendar:` has it
CALENDAR_FALLBACK = Counter(
    "onegrid_calendar_fallback_days_total",
    "Days decided by weekends only: the holiday data does not know their year",
    ["year"],
)
