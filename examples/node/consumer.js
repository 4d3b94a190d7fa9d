// Read, as a department, the receipt of one event and the work orders it became:
// node consumer.js <event id> [seconds]
// Prints one JSON line per message read: {"queue", "type", "id", "subject", "data"}; exits 0
// once it has the event's receipt and, when the event was accepted, a work order of its case
// (set ONEGRID_EXPECT_WORK_ORDER=0 when routing sends the case to other departments), 1 if the
// time runs out first.
"use strict";
const amqp = require("amqplib");
const { settings } = require("./common");

async function main() {
  const { department, url } = settings();
  const eventId = process.argv[2];
  const seconds = Number(process.argv[3] || 30);
  const wantWorkOrder = process.env.ONEGRID_EXPECT_WORK_ORDER !== "0";
  const connection = await amqp.connect(url);
  const channel = await connection.createChannel();
  await channel.prefetch(20);
  const seen = new Set(); // a redelivered message has the same ce-id: read it once
  let receipt = null;
  const workOrderCases = new Set();
  let finish;
  const done = new Promise((resolve) => (finish = resolve));
  let finished = false;
  const check = () => {
    if (!receipt) return;
    if (receipt.outcome !== "accepted" || !wantWorkOrder || workOrderCases.has(receipt.case_id)) {
      finished = true;
      finish(true);
    }
  };
  const read = (queue) => (msg) => {
    if (finished) return; // not acked: the broker gives it back to the next reader
    const h = msg.properties.headers;
    const data = JSON.parse(msg.content.toString("utf8"));
    if (!seen.has(h["ce-id"])) {
      seen.add(h["ce-id"]);
      console.log(JSON.stringify({ queue, type: h["ce-type"], id: h["ce-id"], subject: h["ce-subject"], data }));
      if (queue.startsWith("receipts.") && h["ce-subject"] === eventId) receipt = data;
      if (queue.startsWith("workorders.")) workOrderCases.add(data.case_id);
    }
    channel.ack(msg); // after it is handled: unacked messages come back
    check();
  };
  for (const queue of [`receipts.${department}`, `workorders.${department}`]) {
    await channel.consume(queue, read(queue), { noAck: false });
  }
  const timeout = new Promise((resolve) => setTimeout(() => resolve(false), seconds * 1000));
  const ok = await Promise.race([done, timeout]);
  await connection.close();
  if (!ok) {
    console.error(`no receipt${wantWorkOrder ? " and work order" : ""} for ${eventId} within ${seconds}s`);
    process.exit(1);
  }
}

main().catch((err) => {
  console.error(err.message);
  process.exit(1);
});
