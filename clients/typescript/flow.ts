// A card's whole life and the purchase flow through a client that
// @hey-api/openapi-ts generated from the server's own GET /api/openapi.json
// (scripts/clients.sh; compiled with tsc --strict).
//
//   node out/flow.js BASE_URL PREFIX
//
// Every answer is parsed at run time by the zod schemas generated from the
// same document: successes by the SDK's response validator, refusals by
// the error types' schemas. In legacy mode every business refusal comes as
// HTTP 200, and must still parse as the error type with its Key, never as
// the success (the error cases below). NDJSON: the import goes through the
// generated SDK with a text body; the bulk NDJSON form (the SDK keeps the
// JSON array) and the export's dump through the generated client's
// request().

import { client } from './gen/client.gen';
import * as sdk from './gen/sdk.gen';
import { zBulkResult, zCalculationRefusal, zErrorEnvelope } from './gen/zod.gen';
import type { ErrorEnvelope } from './gen/types.gen';

const [baseUrl, prefix] = process.argv.slice(2) as [string, string];
client.setConfig({ baseUrl });

const auth = (login: string) => ({
  Authorization: 'Basic ' + Buffer.from(`${login}:${login}-demo`).toString('base64'),
});
const admin = auth('admin');
const pos = auth('pos');
const customer = auth('client');

function assert(ok: unknown, what: string): asserts ok {
  if (!ok) throw new Error(what);
}

type Answer<T> = { data?: T; error?: unknown; response: Response };
let checked = 0;
let legacy = false;
let statusOf: Record<string, number> = {};

/** A success: HTTP 200, parsed (by the SDK's zod validator) as the
 * answer, not the error envelope. */
async function ok<T extends { Status: boolean; Key: string }>(
  label: string,
  call: Promise<Answer<T>>,
): Promise<Exclude<T, ErrorEnvelope>> {
  const r = await call;
  assert(r.response.status === 200, `${label}: HTTP ${r.response.status} ${JSON.stringify(r.error)}`);
  const data = r.data;
  assert(data !== undefined && data.Status === true && data.Key === 'OK', `${label}: ${JSON.stringify(data)}`);
  checked++;
  return data as Exclude<T, ErrorEnvelope>;
}

/** A refusal with `key`: parsed as the error type, with the HTTP status of
 * this mode (200 in legacy mode for every business error). */
async function refused(
  label: string,
  key: string,
  call: Promise<Answer<unknown>>,
  schema: typeof zErrorEnvelope | typeof zCalculationRefusal = zErrorEnvelope,
) {
  const r = await call;
  const wire = statusOf[key] ?? 0;
  const expected = legacy && ![401, 408, 413, 429, 431].includes(wire) && wire < 500 ? 200 : wire;
  assert(r.response.status === expected, `${label}: HTTP ${r.response.status}, expected ${expected}`);
  const body = r.response.status === 200 ? r.data : r.error;
  const parsed = schema.parse(body);
  assert(parsed.Status === false && parsed.Key === key && parsed.Value !== '', `${label}: ${JSON.stringify(parsed)}`);
  checked++;
  return parsed;
}

let n = 0;
const card = () => `7${prefix}00000${String(++n).padStart(5, '0')}`;
const mobile = () => `79${prefix}00${String(++n).padStart(5, '0')}`;

async function main() {
  const doc = (await (await fetch(`${baseUrl}/api/openapi.json`)).json()) as {
    info: { description: string };
    'x-error-catalogue': { Key: string; status: number }[];
  };
  legacy = doc.info.description.includes('errors-as-200 mode (`http.business_errors_as_200`): every');
  statusOf = Object.fromEntries(doc['x-error-catalogue'].map((e) => [e.Key, e.status]));

  // --- the card's life ------------------------------------------------------
  await ok('health', sdk.health());
  await ok('ready', sdk.ready());
  const [a, b, c, d] = [card(), card(), card(), card()];
  const loaded = await ok('load cards', sdk.loadCards({
    headers: admin,
    body: [a, b, c].map((Number) => ({ Number, CategoryCode: '0' as const, TypeCode: '0' as const })),
  }));
  assert(loaded.Created === 3 && loaded.Rejected === 0, JSON.stringify(loaded));
  // The NDJSON form of the same load: the generated client's request().
  const raw = await client.post({
    url: '/api/admin/cards',
    headers: { ...admin, 'Content-Type': 'application/x-ndjson' },
    body: JSON.stringify({ Number: d }) + '\n',
    bodySerializer: null,
  });
  assert(zBulkResult.parse(raw.data).Created === 1, JSON.stringify(raw.data));
  const fresh = await ok('balance of a new card', sdk.getBalanceByCardNumber({ headers: pos, path: { number: a } }));
  assert(fresh.StatusCode === '0', JSON.stringify(fresh));
  await ok('issue (GET)', sdk.issueGet({ headers: pos, query: { Number: a } }));
  await ok('issue (POST)', sdk.issuePost({ headers: pos, body: { Number: b } }));
  const contact = async (Name: string) =>
    ok('upsert contact', sdk.upsertContact({
      headers: pos,
      body: { Code: `TS${prefix}-${mobile()}`, Name, MobileNumber: mobile(), BirthDate: '1990-05-17' },
    }));
  const ann = await contact('Anna Test');
  const ivan = await contact('Ivan Test');
  await ok('bindto', sdk.bindTo({ headers: pos, body: { Number: a, MobileNumber: ann.MobileNumber } }));
  await ok('active', sdk.activePost({ headers: pos, body: { Number: a } }));
  const byPhone = await ok('balance by phone', sdk.getBalanceByMobileNumber({ headers: pos, path: { phone: ann.MobileNumber } }));
  assert(byPhone.Number === a && byPhone.StatusCode === '2', JSON.stringify(byPhone));
  await ok('balance by code', sdk.getBalanceByContactCode({ headers: pos, path: { code: ann.Code } }));
  const got = await ok('contact', sdk.getContact({ headers: pos, path: { code: ann.Code } }));
  assert(got.Card?.Number === a, JSON.stringify(got));
  await ok('manual bonus', sdk.accrueBonus({
    headers: admin,
    body: { Number: a, OperationId: `ts-${a}-promo`, Amount: 300, TypeCode: '0' },
  }));

  // --- purchases --------------------------------------------------------------
  const calc = await ok('calculate', sdk.calculatePurchase({ headers: pos, body: { Number: a, Amount: 1000, BonusToPay: 100 } }));
  assert(calc.MaxBonusToPay >= 100, JSON.stringify(calc));
  const purchase = { Number: a, PurchaseId: `ts-${a}-1`, Amount: 1000, BonusToPay: 100 };
  const first = await ok('confirm', sdk.confirmPurchase({ headers: pos, body: purchase }));
  const again = await ok('confirm replayed', sdk.confirmPurchase({ headers: pos, body: purchase }));
  assert(JSON.stringify(first) === JSON.stringify(again), 'a replay answers the first result');
  const refund = await ok('refund', sdk.refundPurchase({
    headers: pos,
    body: { PurchaseId: purchase.PurchaseId, RefundId: 'r1', Amount: 250.5 },
  }));
  assert(refund.RefundedTotal === 250.5, JSON.stringify(refund));
  await ok('cancel', sdk.cancelPurchase({ headers: pos, body: { PurchaseId: purchase.PurchaseId } }));

  // --- block, unblock, history, transactions -----------------------------------
  await ok('block', sdk.block({ headers: customer, body: { Number: a, BlockReasonCode: '0' } }));
  await ok('unblock', sdk.unBlock({ headers: customer, body: { Number: a, UnBlockReasonCode: '0' } }));
  let cursor: string | null | undefined;
  let pages = 0;
  do {
    const page = await ok('history', sdk.getCardHistory({
      headers: admin,
      path: { number: a },
      query: cursor ? { limit: 2, cursor } : { limit: 2 },
    }));
    pages++;
    cursor = page.NextCursor;
  } while (cursor);
  assert(pages >= 3, `history pages: ${pages}`);
  const ledger = await ok('transactions', sdk.getCardTransactions({ headers: pos, path: { number: a } }));
  const ops = new Set(ledger.Items.map((t) => t.Operation));
  assert(['bonus', 'purchase', 'refund', 'cancel'].every((o) => ops.has(o)), [...ops].join());

  // --- export and import: NDJSON through the generated SDK as text --------------
  // The generated export_() types its 200 from the document's first media
  // type, which in legacy mode is the refusal's JSON: the dump is read
  // through the generated client's request() as text.
  const dump = await client.get({ url: '/api/admin/export', headers: admin, parseAs: 'text' });
  assert(dump.response.status === 200 && typeof dump.data === 'string', `export: ${dump.response.status}`);
  assert(dump.response.headers.get('content-type')?.startsWith('application/x-ndjson'), 'export media type');
  const text = dump.data;
  assert(text.startsWith('{"Kind":"header"'), text.slice(0, 200));
  const merged = await ok('import', sdk.import_({
    headers: admin,
    query: { merge: true },
    body: text,
    bodySerializer: null,
  }));
  assert(merged.Created === 0 && merged.Complete, JSON.stringify(merged));
  const bulk = await ok('load contacts', sdk.loadContacts({
    headers: admin,
    body: [{ Code: `TS${prefix}-bulk`, Name: 'Bulk', MobileNumber: mobile(), CardNumber: c, Activate: false }],
  }));
  assert(bulk.Rejected === 0, JSON.stringify(bulk));

  // --- the error cases: each a refusal, parsed as one, in either mode -----------
  const blocked = card();
  await ok('load', sdk.loadCards({ headers: admin, body: [{ Number: blocked }] }));
  await ok('issue', sdk.issueGet({ headers: pos, query: { Number: blocked } }));
  const holder = await contact('Holder');
  await ok('bind', sdk.bindTo({ headers: pos, body: { Number: blocked, MobileNumber: holder.MobileNumber } }));
  await ok('block', sdk.block({ headers: customer, body: { Number: blocked, BlockReasonCode: '0' } }));
  const cases: [string, Promise<Answer<unknown>>][] = [
    ['InvalidCardNumber', sdk.getBalanceByCardNumber({ headers: pos, path: { number: '12' } })],
    ['CannotFindCardNumber', sdk.getBalanceByCardNumber({ headers: pos, path: { number: card() } })],
    ['InvalidMobileNumber', sdk.getBalanceByMobileNumber({ headers: pos, path: { phone: '123' } })],
    ['CannotFindMobileNumber', sdk.getBalanceByMobileNumber({ headers: pos, path: { phone: mobile() } })],
    ['InvalidContactCode', sdk.getContact({ headers: pos, path: { code: 'a.b' } })],
    ['CannotFindContactCode', sdk.getContact({ headers: pos, path: { code: 'nobody-here' } })],
    ['RequiredParameterNotSpecified', sdk.bindTo({ headers: pos, body: { Number: b, MobileNumber: '' } })],
    ['StatusError', sdk.issuePost({ headers: pos, body: { Number: blocked } })],
    ['CardNumberBindToAnotherContact', sdk.bindTo({ headers: pos, body: { Number: c, MobileNumber: ivan.MobileNumber } })],
    ['ContactBindToAnotherCardNumber', sdk.bindTo({ headers: pos, body: { Number: b, MobileNumber: ann.MobileNumber } })],
    ['CannotFindMobile', sdk.bindTo({ headers: pos, body: { Number: b, MobileNumber: mobile() } })],
    ['BlockReasonError', sdk.block({ headers: customer, body: { Number: a, BlockReasonCode: '2' } })],
    ['UnBlockReasonError', sdk.unBlock({ headers: admin, body: { Number: blocked, UnBlockReasonCode: '3' } })],
    ['Forbidden', sdk.getCardHistory({ headers: pos, path: { number: a } })],
    ['InsufficientBonuses', sdk.calculatePurchase({ headers: pos, body: { Number: a, Amount: 1000, BonusToPay: 900 } })],
    ['IdempotencyConflict', sdk.confirmPurchase({ headers: pos, body: { ...purchase, Amount: 999 } })],
    ['InvalidAmount', sdk.calculatePurchase({ headers: pos, body: { Number: a, Amount: 0 } })],
    ['PurchaseNotFound', sdk.cancelPurchase({ headers: pos, body: { PurchaseId: 'no-such-purchase' } })],
    ['MobileNumberBelongsToAnotherContact', sdk.upsertContact({ headers: pos, body: { Code: ivan.Code, MobileNumber: ann.MobileNumber } })],
  ];
  for (const [key, call] of cases) {
    await refused(key, key, call);
  }
  const refusal = zCalculationRefusal.parse(
    await refused(
      'InsufficientBonuses with MaxBonusToPay',
      'InsufficientBonuses',
      sdk.calculatePurchase({ headers: pos, body: { Number: a, Amount: 1000, BonusToPay: 900 } }),
      zCalculationRefusal,
    ),
  );
  assert(refusal.MaxBonusToPay !== undefined && refusal.MaxBonusToPay < 900, JSON.stringify(refusal));

  console.log(
    `typescript client (${legacy ? 'legacy' : 'normal'} mode): ${checked} answers parsed, ` +
      `${cases.length} error cases told from successes`,
  );
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
