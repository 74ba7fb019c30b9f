// Runs in a real browser: calls adscope's CampaignService over gRPC-Web with
// the Connect client, then posts what each call returned back to the page's
// origin, where the test reads it.
//
// The service description comes from the same descriptor set the server uses
// for reflection, so the page needs no generated code.

import { createFileRegistry, fromBinary } from "@bufbuild/protobuf";
import { FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import { ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";

async function fetchOk(path) {
  const response = await fetch(path);
  if (!response.ok) {
    throw new Error(`${path}: HTTP ${response.status}`);
  }
  return response;
}

function metadata(token, tenant) {
  const headers = {};
  if (token) headers.authorization = `Bearer ${token}`;
  if (tenant) headers["x-tenant-id"] = tenant;
  return { headers };
}

// One call's outcome as plain JSON: the campaign, or the gRPC status code.
async function outcome(call) {
  try {
    const reply = await call();
    return { ok: true, id: reply.campaign.id, name: reply.campaign.name };
  } catch (error) {
    const status = ConnectError.from(error);
    return { ok: false, code: status.code, message: status.rawMessage };
  }
}

async function run() {
  const config = await (await fetchOk("/config.json")).json();
  const bytes = new Uint8Array(await (await fetchOk("/descriptors.binpb")).arrayBuffer());
  const registry = createFileRegistry(fromBinary(FileDescriptorSetSchema, bytes));
  const service = registry.getService("adscope.analytics.v1.CampaignService");
  if (!service) throw new Error("CampaignService is not in the descriptor set");

  const client = (baseUrl) =>
    createClient(service, createGrpcWebTransport({ baseUrl, useBinaryFormat: true }));
  const analytics = client(config.analytics);
  const get = (target, id, token, tenant) => () =>
    target.getCampaign({ id }, metadata(token, tenant));

  return {
    userAgent: navigator.userAgent,
    origin: location.origin,
    own: await outcome(get(analytics, config.ownCampaign, config.tokenA, config.tenantA)),
    otherTenants: await outcome(get(analytics, config.otherCampaign, config.tokenA, config.tenantA)),
    foreignHeader: await outcome(get(analytics, config.ownCampaign, config.tokenA, config.tenantB)),
    noToken: await outcome(get(analytics, config.ownCampaign, null, config.tenantA)),
    // A server whose CORS list does not name this page's origin.
    otherOrigin: await outcome(
      get(client(config.analyticsOtherOrigin), config.ownCampaign, config.tokenA, config.tenantA),
    ),
  };
}

async function report() {
  let body;
  try {
    body = await run();
  } catch (error) {
    body = { error: String(error && error.stack ? error.stack : error) };
  }
  document.body.textContent = JSON.stringify(body);
  await fetch("/result", { method: "POST", body: JSON.stringify(body) });
}

report();
