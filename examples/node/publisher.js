// Publish one event as a department: node publisher.js <event.json>
// event.json: {"type": "<department>.<event type>", "version": 1, "data": {...}} (the AsyncAPI
// document's example of that message has the data). Prints the event's id: the receipt's subject.
"use strict";
const crypto = require("node:crypto");
const fs = require("node:fs");
const amqp = require("amqplib");
const { settings } = require("./common");

async function main() {
  const { tenant, department, user, url } = settings();
  const event = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
  const id = process.env.ONEGRID_EVENT_ID || crypto.randomUUID(); // unique per source; a resend keeps it
  const connection = await amqp.connect(url);
  try {
    const channel = await connection.createConfirmChannel();
    const body = Buffer.from(JSON.stringify(event.data), "utf8");
    await new Promise((resolve, reject) => {
      channel.publish("onegrid.intake", event.type, body, {
        persistent: true,
        mandatory: true,
        contentType: "application/json",
        userId: user, // RabbitMQ checks it is the connection's user; intake trusts it
        headers: {
          "ce-specversion": "1.0",
          "ce-id": id,
          "ce-source": `/${tenant}/departments/${department}/node-example`,
          "ce-type": event.type,
          "ce-time": new Date().toISOString(),
          "ce-dataschema": `urn:onegrid:contract:${event.type}:${event.version || 1}`,
          "ce-tenant": tenant,
          "ce-department": department,
        },
      }, (err) => (err ? reject(err) : resolve()));
    });
    // the confirm: the bus has the event. Whether it became a case is the receipt's to say.
    console.log(id);
  } finally {
    await connection.close();
  }
}

main().catch((err) => {
  console.error(err.message);
  process.exit(1);
});
