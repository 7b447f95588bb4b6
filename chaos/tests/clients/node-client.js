// Drives `aimate chaos proxy` with the published Node client (toxiproxy-node-client
// 4.1.0, from npm) through every call it offers, and checks each call's effect on real
// traffic through the proxy: round trips timed, connections refused or reset.
//
//   TOXIPROXY_URL=http://127.0.0.1:PORT UPSTREAM=127.0.0.1:PORT OTHER_UPSTREAM=… \
//     NODE_PATH=…/node_modules node node-client.js
//
// Exits 0 after printing "ok: N checks", 1 with the first failed check.

const net = require("node:net");
const { Toxiproxy, ToxiproxyError } = require("toxiproxy-node-client");

const api = process.env.TOXIPROXY_URL;
const upstream = process.env.UPSTREAM;
const otherUpstream = process.env.OTHER_UPSTREAM;
let checks = 0;

function check(condition, what) {
  if (!condition) {
    throw new Error(`check failed: ${what}`);
  }
  checks += 1;
}

function parse(address) {
  const i = address.lastIndexOf(":");
  return { host: address.slice(0, i), port: Number(address.slice(i + 1)) };
}

// Sends `size` bytes to the echo upstream through `address` and waits for them all back.
// Resolves with the milliseconds it took, or { error } when the connection failed.
function roundTrip(address, size = 4) {
  return new Promise((resolve) => {
    const started = process.hrtime.bigint();
    const socket = net.connect(parse(address));
    let received = 0;
    const done = (value) => {
      socket.destroy();
      resolve(value);
    };
    socket.setTimeout(5000, () => done({ error: "timeout" }));
    socket.on("connect", () => socket.write(Buffer.alloc(size, 120)));
    socket.on("data", (data) => {
      received += data.length;
      if (received >= size) {
        done(Number(process.hrtime.bigint() - started) / 1e6);
      }
    });
    socket.on("error", (error) => done({ error: error.code || String(error) }));
    socket.on("close", () => done({ error: received < size ? "closed" : "done" }));
  });
}

async function expectRejected(promise, status, what) {
  try {
    await promise;
  } catch (error) {
    check(error instanceof ToxiproxyError, `${what}: a ToxiproxyError`);
    check(String(error.message).includes(String(status)), `${what}: status ${status} (${error.message})`);
    return;
  }
  check(false, `${what}: rejected`);
}

async function main() {
  const toxiproxy = new Toxiproxy(api);

  const version = await toxiproxy.getVersion();
  check(version.includes("aimate-chaos"), `getVersion: ${version}`);

  // createProxy: listens, forwards.
  let proxy = await toxiproxy.createProxy({ name: "node", listen: "127.0.0.1:0", upstream });
  check(proxy.name === "node" && proxy.enabled === true, "createProxy: enabled");
  const plain = await roundTrip(proxy.listen);
  check(typeof plain === "number" && plain < 100, `createProxy: traffic passes (${JSON.stringify(plain)})`);
  await expectRejected(
    toxiproxy.createProxy({ name: "node", listen: "127.0.0.1:0", upstream }),
    409,
    "createProxy twice",
  );

  // get / getAll.
  const got = await toxiproxy.get("node");
  check(got.listen === proxy.listen && got.upstream === upstream, "get: same proxy");
  const all = await toxiproxy.getAll();
  check(Object.keys(all).includes("node"), "getAll: lists it");
  await expectRejected(toxiproxy.get("nope"), 404, "get unknown");

  // addToxic / getToxic / toxic.update / toxic.remove, each felt on the wire.
  const latency = await proxy.addToxic({
    name: "slow",
    type: "latency",
    stream: "downstream",
    toxicity: 1,
    attributes: { latency: 200, jitter: 0 },
  });
  check(latency.name === "slow" && latency.attributes.latency === 200, "addToxic: echoed");
  const slowed = await roundTrip(proxy.listen);
  check(slowed >= 190 && slowed < 400, `addToxic latency 200: ${slowed} ms`);
  const fetched = await proxy.getToxic("slow");
  check(fetched.type === "latency" && fetched.attributes.latency === 200, "getToxic");
  const updated = await latency.update({ attributes: { latency: 50, jitter: 0 }, toxicity: 1 });
  check(updated.attributes.latency === 50, "toxic.update: echoed");
  const faster = await roundTrip(proxy.listen);
  check(faster >= 45 && faster < 180, `toxic.update latency 50: ${faster} ms`);
  await latency.remove();
  const back = await roundTrip(proxy.listen);
  check(back < 100, `toxic.remove: ${back} ms`);
  await expectRejected(proxy.getToxic("slow"), 404, "getToxic removed");

  // The other toxic types, each by its effect.
  const limit = await proxy.addToxic({
    name: "limit",
    type: "limit_data",
    stream: "downstream",
    toxicity: 1,
    attributes: { bytes: 10 },
  });
  const cut = await roundTrip(proxy.listen, 100);
  check(cut.error === "closed", `limit_data 10 bytes: ${JSON.stringify(cut)}`);
  await limit.remove();
  const reset = await proxy.addToxic({
    name: "reset",
    type: "reset_peer",
    stream: "downstream",
    toxicity: 1,
    attributes: { timeout: 0 },
  });
  const refused = await roundTrip(proxy.listen);
  check(typeof refused === "object", `reset_peer: ${JSON.stringify(refused)}`);
  await reset.remove();
  const narrow = await proxy.addToxic({
    name: "narrow",
    type: "bandwidth",
    stream: "downstream",
    toxicity: 1,
    attributes: { rate: 100 },
  });
  const paced = await roundTrip(proxy.listen, 50000);
  check(paced >= 450 && paced < 1000, `bandwidth 100 KB/s, 50 KB: ${paced} ms`);
  await narrow.remove();
  const hold = await proxy.addToxic({
    name: "hold",
    type: "timeout",
    stream: "upstream",
    toxicity: 1,
    attributes: { timeout: 300 },
  });
  const timedOut = await roundTrip(proxy.listen);
  check(timedOut.error === "closed", `timeout 300: ${JSON.stringify(timedOut)}`);
  await hold.remove();
  const sliced = await proxy.addToxic({
    name: "sliced",
    type: "slicer",
    stream: "downstream",
    toxicity: 1,
    attributes: { average_size: 100, size_variation: 10, delay: 1000 },
  });
  const slices = await roundTrip(proxy.listen, 5000);
  check(typeof slices === "number" && slices >= 40, `slicer 50 pieces 1 ms apart: ${slices} ms`);
  await sliced.remove();
  const spared = await proxy.addToxic({
    name: "spared",
    type: "latency",
    stream: "downstream",
    toxicity: 0,
    attributes: { latency: 500, jitter: 0 },
  });
  const untouched = await roundTrip(proxy.listen);
  check(untouched < 100, `toxicity 0 spares connections: ${untouched} ms`);
  await spared.remove();

  // update: disable (refused), enable, move upstream.
  proxy = await proxy.update({ enabled: false });
  check(proxy.enabled === false, "update enabled=false: echoed");
  const down = await roundTrip(proxy.listen);
  check(typeof down === "object", `disabled: ${JSON.stringify(down)}`);
  proxy = await proxy.update({ enabled: true });
  check(typeof (await roundTrip(proxy.listen)) === "number", "enabled again: traffic passes");
  proxy = await proxy.update({ upstream: otherUpstream });
  check(proxy.upstream === otherUpstream, "update upstream: echoed");
  check(typeof (await roundTrip(proxy.listen)) === "number", "moved upstream: traffic passes");

  // populate: creates, and keeps what is unchanged.
  await proxy.addToxic({ name: "kept", type: "latency", stream: "downstream", toxicity: 1, attributes: { latency: 150, jitter: 0 } });
  const populated = await toxiproxy.populate([
    { name: "node", listen: proxy.listen, upstream: otherUpstream },
    { name: "node2", listen: "127.0.0.1:0", upstream },
  ]);
  check(Object.keys(populated).sort().join() === "node,node2", "populate: both listed");
  const kept = await roundTrip(proxy.listen);
  check(kept >= 140, `populate kept the unchanged proxy's toxic: ${kept} ms`);
  check(typeof (await roundTrip(populated.node2.listen)) === "number", "populate: new proxy passes traffic");

  // reset: toxics gone, proxies enabled.
  await populated.node2.update({ enabled: false });
  await toxiproxy.reset();
  const afterReset = await roundTrip(proxy.listen);
  check(afterReset < 100, `reset removed the toxic: ${afterReset} ms`);
  check(typeof (await roundTrip(populated.node2.listen)) === "number", "reset enabled node2");

  // remove.
  await populated.node2.remove();
  await expectRejected(toxiproxy.get("node2"), 404, "get removed proxy");
  await proxy.remove();
  check(Object.keys(await toxiproxy.getAll()).length === 0, "remove: none left");

  console.log(`ok: ${checks} checks`);
}

main().catch((error) => {
  console.error(String(error && error.stack ? error.stack : error));
  process.exit(1);
});
