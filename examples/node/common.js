// What both examples share: the county's bus URL, built as the AsyncAPI document says
// (amqp://<user>:<password>@<host>:<port>/<vhost>, each part percent-encoded).
"use strict";

function settings() {
  const need = (name) => {
    const value = process.env[name];
    if (!value) {
      console.error(`set ${name} (see examples/README.md)`);
      process.exit(2);
    }
    return value;
  };
  const tenant = need("ONEGRID_TENANT"); // the county: the vhost
  const department = need("ONEGRID_DEPARTMENT");
  const password = need("ONEGRID_PASSWORD"); // the department broker user's, from onboarding
  const host = process.env.ONEGRID_AMQP_HOST || "localhost:5672";
  const user = `${tenant}.${department}`; // the broker user: a department speaks only as itself
  const enc = encodeURIComponent;
  return {
    tenant,
    department,
    user,
    url: `amqp://${enc(user)}:${enc(password)}@${host}/${enc(tenant)}`,
  };
}

module.exports = { settings };
