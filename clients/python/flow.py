"""A card's whole life and the purchase flow through a client that
openapi-python-client generated from the server's own GET /api/openapi.json.

    flow.py CLIENT_DIR BASE_URL PREFIX

CLIENT_DIR holds the generated package `loyalty_client`; PREFIX (two digits)
keeps this run's cards and phones apart from another flow's on the same
server. Every answer, errors included, is parsed into its generated type by
the generated code; the flow checks the type, the Key and the HTTP status.
In legacy mode (the document says so) every business refusal comes as HTTP
200, and the generated client must still tell it from a success: the
ERROR_CASES below, each parsed into the error type with its Key.

The NDJSON forms (a bulk load as NDJSON, the import, the export) are media
types openapi-python-client does not read: they go through the generated
client's own httpx client (docs/openapi.md).
"""

import datetime
import json
import sys

sys.path.insert(0, sys.argv[1])
BASE_URL, PREFIX = sys.argv[2], sys.argv[3]

import httpx  # noqa: E402

from loyalty_client import Client  # noqa: E402
from loyalty_client.api.admin import load_cards, load_contacts  # noqa: E402
from loyalty_client.api.card import (  # noqa: E402
    accrue_bonus,
    active_post,
    bind_to,
    block,
    get_balance_by_card_number,
    get_balance_by_contact_code,
    get_balance_by_mobile_number,
    get_card_history,
    get_card_transactions,
    issue_get,
    issue_post,
    un_block,
)
from loyalty_client.api.contact import get_contact, upsert_contact  # noqa: E402
from loyalty_client.api.ops import health, ready  # noqa: E402
from loyalty_client.api.purchase import (  # noqa: E402
    calculate_purchase,
    cancel_purchase,
    confirm_purchase,
    refund_purchase,
)
from loyalty_client.models import (  # noqa: E402
    AccrueBonusBody,
    AccrueBonusBodyTypeCode,
    ActivePostBody,
    Balance,
    BindToBody,
    BlockBody,
    BlockBodyBlockReasonCode,
    BonusAccrual,
    BulkResult,
    Calculation,
    CalculatePurchaseBody,
    CalculationRefusal,
    CancelPurchaseBody,
    CardLine,
    CardLineCategoryCode,
    CardLineTypeCode,
    Confirmation,
    ConfirmPurchaseBody,
    Contact,
    ContactLine,
    ContactSaved,
    ErrorEnvelope,
    HistoryPage,
    IssuePostBody,
    Ok,
    RefundPurchaseBody,
    Reversal,
    TransactionPage,
    UnBlockBody,
    UnBlockBodyUnBlockReasonCode,
    UpsertContactBody,
)

doc = httpx.get(f"{BASE_URL}/api/openapi.json").json()
LEGACY = "errors-as-200 mode (`http.business_errors_as_200`): every" in doc["info"]["description"]
STATUS = {e["Key"]: e["status"] for e in doc["x-error-catalogue"]}
ERRORS = (ErrorEnvelope, CalculationRefusal)


def client(login):
    return Client(
        base_url=BASE_URL,
        httpx_args={"auth": (login, f"{login}-demo")},
        raise_on_unexpected_status=True,
    )


admin, pos, customer = client("admin"), client("pos"), client("client")
checked = 0


def call(op, c, expected, key="OK", **kwargs):
    """Calls a generated operation; its answer must parse into `expected`
    with `key`, and come with the HTTP status of this mode."""
    global checked
    r = op.sync_detailed(client=c, **kwargs)
    parsed = r.parsed
    where = f"{op.__name__.rsplit('.', 1)[-1]}: {r.status_code} {r.content[:300]!r}"
    assert isinstance(parsed, expected), f"{where}: parsed as {type(parsed).__name__}, not {expected}"
    assert parsed.key == key, f"{where}: Key {parsed.key}"
    assert parsed.status == (key == "OK"), where
    want = 200 if key == "OK" or (LEGACY and STATUS[key] not in (401, 408, 413, 429, 431) and STATUS[key] < 500) else STATUS[key]
    assert r.status_code == want, f"{where}: HTTP {r.status_code}, expected {want}"
    checked += 1
    return parsed


n = 0


def card():
    global n
    n += 1
    return f"7{PREFIX}00000{n:05d}"


def mobile():
    global n
    n += 1
    return f"79{PREFIX}00{n:05d}"


def new_contact(name="Anna Test"):
    code = f"PY{PREFIX}-{mobile()}"
    saved = call(upsert_contact, pos, ContactSaved, body=UpsertContactBody(
        code=code, name=name, mobile_number=mobile(), birth_date="1990-05-17", city="Kazan"))
    assert saved.created is True
    return saved


# --- the card's life -------------------------------------------------------
call(health, admin, Ok)
call(ready, admin, Ok)
a, b, c, d = card(), card(), card(), card()
loaded = call(load_cards, admin, BulkResult, body=[
    CardLine(number=x, category_code=CardLineCategoryCode.VALUE_0, type_code=CardLineTypeCode.VALUE_0)
    for x in (a, b, c)
])
assert (loaded.created, loaded.rejected) == (3, 0), loaded
# The NDJSON form of the same load: a raw call through the generated client.
raw = admin.get_httpx_client().post(
    "/api/admin/cards", content=json.dumps({"Number": d}) + "\n",
    headers={"Content-Type": "application/x-ndjson"})
assert BulkResult.from_dict(raw.json()).created == 1, raw.text
assert call(get_balance_by_card_number, pos, Balance, number=a).status_code == "0"
call(issue_get, pos, Ok, number=a)
call(issue_post, pos, Ok, body=IssuePostBody(number=b))
ann, ivan = new_contact(), new_contact("Ivan Test")
call(bind_to, pos, Ok, body=BindToBody(number=a, mobile_number=ann.mobile_number))
call(active_post, pos, Ok, body=ActivePostBody(number=a))
balance = call(get_balance_by_mobile_number, pos, Balance, phone=ann.mobile_number)
assert (balance.number, balance.status_code, balance.code) == (a, "2", ann.code), balance
call(get_balance_by_contact_code, pos, Balance, code=ann.code)
assert call(get_contact, pos, Contact, code=ann.code).card.number == a
bonus = call(accrue_bonus, admin, BonusAccrual, body=AccrueBonusBody(
    number=a, operation_id=f"py-{a}-promo", amount=300, type_code=AccrueBonusBodyTypeCode.VALUE_0))
assert bonus.amount == 300

# --- purchases ---------------------------------------------------------------
calc = call(calculate_purchase, pos, Calculation, body=CalculatePurchaseBody(number=a, amount=1000, bonus_to_pay=100))
assert calc.max_bonus_to_pay >= 100, calc
purchase = ConfirmPurchaseBody(number=a, purchase_id=f"py-{a}-1", amount=1000, bonus_to_pay=100,
                               date=datetime.date.today())
first = call(confirm_purchase, pos, Confirmation, body=purchase)
again = call(confirm_purchase, pos, Confirmation, body=purchase)
assert first.to_dict() == again.to_dict(), "a replay answers the first result"
refund = call(refund_purchase, pos, Reversal, body=RefundPurchaseBody(
    purchase_id=purchase.purchase_id, refund_id="r1", amount=250.5))
assert refund.refunded_total == 250.5
call(cancel_purchase, pos, Reversal, body=CancelPurchaseBody(purchase_id=purchase.purchase_id))

# --- block, unblock, history, transactions ------------------------------------
call(block, customer, Ok, body=BlockBody(number=a, block_reason_code=BlockBodyBlockReasonCode.VALUE_0))
assert call(get_balance_by_card_number, pos, Balance, number=a).block_reason_code == "0"
call(un_block, customer, Ok, body=UnBlockBody(number=a, un_block_reason_code=UnBlockBodyUnBlockReasonCode.VALUE_0))
pages, cursor = 0, None
while True:
    kwargs = {"limit": 2} | ({"cursor": cursor} if cursor else {})
    page = call(get_card_history, admin, HistoryPage, number=a, **kwargs)
    pages += 1
    cursor = page.next_cursor
    if not cursor:
        break
    assert isinstance(cursor, str)
assert pages >= 3, pages
ledger = call(get_card_transactions, pos, TransactionPage, number=a, limit=50)
assert {t.operation for t in ledger.items} >= {"bonus", "purchase", "refund", "cancel"}, ledger

# --- export and import: NDJSON, raw calls through the generated client --------
# (The generator keeps GET /api/admin/export without its NDJSON answer, and
# drops the import, whose only body is NDJSON.)
dump = admin.get_httpx_client().get("/api/admin/export")
assert dump.status_code == 200 and dump.content.startswith(b'{"Kind":"header"'), dump.content[:200]
assert dump.headers["content-type"].startswith("application/x-ndjson")
merged = admin.get_httpx_client().post(
    "/api/admin/import", params={"merge": "true"}, content=dump.content,
    headers={"Content-Type": "application/x-ndjson"}).json()
assert merged["Status"] is True and merged["Created"] == 0 and merged["Complete"] is True, merged
load_contacts_answer = call(load_contacts, admin, BulkResult, body=[
    ContactLine(code=f"PY{PREFIX}-bulk", name="Bulk", mobile_number=mobile(), card_number=c, activate=False)])
assert load_contacts_answer.rejected == 0, load_contacts_answer

# --- the error cases: each a refusal, parsed as one, in either mode -----------
blocked = card()
call(load_cards, admin, BulkResult, body=[CardLine(number=blocked)])
call(issue_get, pos, Ok, number=blocked)
holder = new_contact()
call(bind_to, pos, Ok, body=BindToBody(number=blocked, mobile_number=holder.mobile_number))
call(block, customer, Ok, body=BlockBody(number=blocked, block_reason_code=BlockBodyBlockReasonCode.VALUE_0))
ERROR_CASES = [
    ("InvalidCardNumber", get_balance_by_card_number, pos, {"number": "12"}),
    ("CannotFindCardNumber", get_balance_by_card_number, pos, {"number": card()}),
    ("InvalidMobileNumber", get_balance_by_mobile_number, pos, {"phone": "123"}),
    ("CannotFindMobileNumber", get_balance_by_mobile_number, pos, {"phone": mobile()}),
    ("InvalidContactCode", get_contact, pos, {"code": "a.b"}),
    ("CannotFindContactCode", get_contact, pos, {"code": "nobody-here"}),
    ("RequiredParameterNotSpecified", bind_to, pos, {"body": BindToBody(number=b, mobile_number="")}),
    ("StatusError", issue_post, pos, {"body": IssuePostBody(number=blocked)}),
    ("CardNumberBindToAnotherContact", bind_to, pos, {"body": BindToBody(number=a, mobile_number=ivan.mobile_number)}),
    ("ContactBindToAnotherCardNumber", bind_to, pos, {"body": BindToBody(number=b, mobile_number=ann.mobile_number)}),
    ("CannotFindMobile", bind_to, pos, {"body": BindToBody(number=b, mobile_number=mobile())}),
    ("BlockReasonError", block, customer, {"body": BlockBody(number=a, block_reason_code=BlockBodyBlockReasonCode.VALUE_2)}),
    ("UnBlockReasonError", un_block, admin, {"body": UnBlockBody(number=blocked, un_block_reason_code=UnBlockBodyUnBlockReasonCode.VALUE_3)}),
    ("Forbidden", get_card_history, pos, {"number": a}),
    ("InsufficientBonuses", calculate_purchase, pos, {"body": CalculatePurchaseBody(number=a, amount=1000, bonus_to_pay=900)}),
    ("IdempotencyConflict", confirm_purchase, pos, {"body": ConfirmPurchaseBody(number=a, purchase_id=purchase.purchase_id, amount=999)}),
    ("InvalidAmount", calculate_purchase, pos, {"body": CalculatePurchaseBody(number=a, amount=0)}),
    ("PurchaseNotFound", cancel_purchase, pos, {"body": CancelPurchaseBody(purchase_id="no-such-purchase")}),
    ("MobileNumberBelongsToAnotherContact", upsert_contact, pos, {"body": UpsertContactBody(code=ivan.code, mobile_number=ann.mobile_number)}),
]
for key, op, c, kwargs in ERROR_CASES:
    refusal = call(op, c, ERRORS, key, **kwargs)
    assert refusal.value, f"{key}: a refusal says why"
refusal = call(calculate_purchase, pos, CalculationRefusal, "InsufficientBonuses",
               body=CalculatePurchaseBody(number=a, amount=1000, bonus_to_pay=900))
assert refusal.max_bonus_to_pay is not None and refusal.max_bonus_to_pay < 900, refusal

print(f"python client ({'legacy' if LEGACY else 'normal'} mode): {checked} answers parsed, "
      f"{len(ERROR_CASES)} error cases told from successes")
