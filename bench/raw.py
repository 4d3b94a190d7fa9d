"""The raw broker ceiling: kombu publish -> queue -> consume+ack, nothing else, with the same
message size, publisher confirms, persistence and queue type as a department event."""

from __future__ import annotations

import threading
import time

from kombu import Connection, Queue

from bench.stats import Run


def consume_until(uri: str, queues, on_message, done: threading.Event, prefetch: int = 256) -> None:
    """Consume `queues` with `on_message` (bodies undecoded) until `done` is set."""
    with Connection(uri) as conn:
        with conn.Consumer(queues, on_message=on_message, prefetch_count=prefetch):
            while not done.is_set():
                try:
                    conn.drain_events(timeout=1)
                except TimeoutError:
                    pass


def ceiling(uri: str, messages: int, size: int, publishers: int, queue_args: dict) -> Run:
    queue = Queue("bench.raw", durable=True, queue_arguments=queue_args)
    body = b"x" * size
    run = Run("raw kombu publish -> consume", messages)
    sent_at: dict[int, float] = {}
    with Connection(uri) as conn:
        queue(conn.channel()).declare()
        queue(conn.channel()).purge()
    done = threading.Event()

    def on_message(message):
        run.latencies.append(time.time() - sent_at.get(int(message.headers["n"]), time.time()))
        message.ack()
        if len(run.latencies) >= messages:
            run.finished = time.perf_counter()
            done.set()

    def consume():
        consume_until(uri, [queue], on_message, done, prefetch=64)

    def publish(part: range):
        with Connection(uri, transport_options={"confirm_publish": True}) as conn:
            producer = conn.Producer()
            for n in part:
                sent_at[n] = time.time()
                producer.publish(
                    body,
                    routing_key=queue.name,
                    headers={"n": n},
                    content_type="application/json",
                    content_encoding="binary",
                    delivery_mode=2,
                )

    consumer = threading.Thread(target=consume, daemon=True)
    consumer.start()
    time.sleep(0.5)
    run.started = time.perf_counter()
    threads = [threading.Thread(target=publish, args=(range(i, messages, publishers),)) for i in range(publishers)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    run.published = time.perf_counter()
    done.wait(120)
    with Connection(uri) as conn:
        queue(conn.channel()).delete()
    return run
