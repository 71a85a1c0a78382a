"""Pure unit tests of the customers domain (R-CUS-01/02/04/05, R-UX-01): no database, no I/O."""


from __future__ import annotations

import datetime as dt
import uuid

import pytest

from crm_customers.domain.masking import mask_account_number, mask_phone, mask_tax_id
from crm_customers.domain.model import (
    MAX_ADDRESSES,
    MAX_KEY_FACTS,
    MAX_TAG,
    MAX_TAGS,
    Address,
    AddressKind,
    BankAccount,
    Contact,
    Customer,
    CustomerStatus,
    FollowUp,
    FollowUpKind,
    LifecycleStage,
    Origin,
    changed_fields,
    normalise_contact,
    normalise_customer,
    normalise_follow_up,
)
from crm_customers.domain.tax_id import foreign_tax_id_problem, uscc_check_char, uscc_problem
from crm_customers.domain.text import clean, strip_controls
from crmkit.errors import FieldViolation, InvalidArgument

# GB 32100-2015, written out again here so the test does not trust the code under test.
ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)


def check_char(first17: str) -> str:
    total = sum(ALPHABET.index(c) * w for c, w in zip(first17, WEIGHTS, strict=True))
    return ALPHABET[(31 - total % 31) % 31]


def uscc(prefix: str) -> str:
    return prefix + check_char(prefix)


KNOWN_VALID = "91350100M000100Y43"  # a real-format code; its check digit verified below


def customer(**overrides: object) -> Customer:
    values: dict[str, object] = {"id": uuid.uuid4(), "name": "Acme", "owner_id": "rep-east",
                                 "team_id": "east", "department_path": "/sales/east/"}
    return Customer(**(values | overrides))  # type: ignore[arg-type]


def violations(exc: pytest.ExceptionInfo[InvalidArgument]) -> dict[str, str]:
    return {v.field: v.description for v in exc.value.violations}


# Unified social credit code -------------------------------------------------------------

class TestUscc:
    def test_known_code_is_valid_by_the_independent_algorithm(self) -> None:
        assert check_char(KNOWN_VALID[:17]) == KNOWN_VALID[17]
        assert uscc_problem(KNOWN_VALID) is None

    @pytest.mark.parametrize("prefix", ["91110000600037341", "91310000MA1FL0000", "12100000400000000",
                                        "52440300MA5F00000", "Y1000000000000000", "00000000000000000"])
    def test_check_char_matches_the_standard(self, prefix: str) -> None:
        assert uscc_check_char(prefix) == check_char(prefix)
        assert uscc_problem(uscc(prefix)) is None

    def test_check_value_30_maps_to_the_last_letter_and_0_to_zero(self) -> None:
        # Find prefixes whose check value lands on both ends of the alphabet.
        ends = set()
        for n in range(2000):
            prefix = f"9111000060{n:07d}"
            ends.add(check_char(prefix))
            assert uscc_check_char(prefix) == check_char(prefix)
        assert {"0", "Y"} <= ends

    @pytest.mark.parametrize("code,length", [("", 0), ("9135010", 7), (KNOWN_VALID + "0", 19),
                                             (KNOWN_VALID[:17], 17)])
    def test_wrong_length(self, code: str, length: int) -> None:
        assert uscc_problem(code) == f"a unified social credit code has 18 characters, not {length}"

    @pytest.mark.parametrize("bad", ["I", "O", "S", "V", "Z", "-", "a"])
    def test_characters_outside_the_alphabet(self, bad: str) -> None:
        code = KNOWN_VALID[:5] + bad + KNOWN_VALID[6:]
        problem = uscc_problem(code)
        assert problem is not None
        assert repr(bad) in problem and "cannot appear" in problem

    def test_every_wrong_check_digit_is_rejected_naming_the_right_one(self) -> None:
        for wrong in ALPHABET.replace(KNOWN_VALID[17], ""):
            problem = uscc_problem(KNOWN_VALID[:17] + wrong)
            assert problem == f"check digit is {wrong!r} but should be '3': the code is mistyped"

    def test_single_character_typo_is_caught(self) -> None:
        typo = KNOWN_VALID[:3] + "6" + KNOWN_VALID[4:]  # 5 -> 6
        assert uscc_problem(typo) is not None


class TestForeignTaxId:
    @pytest.mark.parametrize("code", ["DE123456789", "GB 123 4567 89", "12-3456789", "FR.12/345", "ABC"])
    def test_accepted(self, code: str) -> None:
        assert foreign_tax_id_problem(code) is None

    @pytest.mark.parametrize("code", ["AB", "-ABC", "ABC-", "AB_C", "税号12345", "A" * 41])
    def test_rejected(self, code: str) -> None:
        assert foreign_tax_id_problem(code) == "must be 3 to 40 letters, digits, spaces or - . /"

    def test_foreign_customer_skips_the_uscc_rule(self) -> None:
        c = normalise_customer(customer(origin=Origin.FOREIGN, tax_id=" de 123456789 "))
        assert c.tax_id == "DE 123456789"

    def test_foreign_customer_with_bad_tax_id(self) -> None:
        with pytest.raises(InvalidArgument) as exc:
            normalise_customer(customer(origin=Origin.FOREIGN, tax_id="x"))
        assert set(violations(exc)) == {"tax_id"}


# Customers -----------------------------------------------------------------------------

class TestCustomerNormalisation:
    def test_full_width_name_folded_and_whitespace_collapsed(self) -> None:
        c = normalise_customer(customer(name="  ＡＣＭＥ\u3000Medical\t\n  Ｃｏ．，Ｌｔｄ  "))
        assert c.name == "ACME Medical Co.,Ltd"

    def test_clean_is_nfkc_and_collapses_whitespace(self) -> None:
        assert clean("\u3000１２３\u00a0ａｂｃ  ") == "123 abc"
        assert clean("上海\n\n医疗 器械") == "上海 医疗 器械"

    def test_control_characters_dropped(self) -> None:
        # PostgreSQL rejects NUL in text: left in, it would be a server error instead of a cleanup.
        assert clean("Ac\x00me\x07 \x1b[31mCo\x7f") == "Acme [31mCo"
        assert strip_controls("line 1\r\n\tline\x00 2\x0b") == "line 1\r\n\tline 2"
        c = normalise_customer(customer(name="A\x00B", industry=" metals\x00", owner_id=" rep-east\x00",
                                        team_id=" east "))
        assert (c.name, c.industry, c.owner_id, c.team_id) == ("AB", "metals", "rep-east", "east")
        f = normalise_follow_up(follow_up(content=" a\x00\n b "), NOW)
        assert f.content == "a\n b"

    def test_domestic_tax_id_cleaned_upper_cased_and_spaces_removed(self) -> None:
        messy = "９１３５ ０１００ m000 100y43"
        assert normalise_customer(customer(tax_id=messy)).tax_id == KNOWN_VALID

    def test_domestic_tax_id_with_wrong_check_digit(self) -> None:
        with pytest.raises(InvalidArgument) as exc:
            normalise_customer(customer(tax_id=KNOWN_VALID[:17] + "4"))
        assert violations(exc) == {"tax_id": "check digit is '4' but should be '3': the code is mistyped"}
        assert exc.value.reason == "INVALID_ARGUMENT"

    def test_tax_id_is_optional(self) -> None:
        assert normalise_customer(customer(tax_id="   ")).tax_id == ""

    def test_defaults(self) -> None:
        # R-UX-01: only the name is mandatory; the rest defaults.
        c = normalise_customer(customer())
        assert (c.origin, c.status, c.lifecycle_stage) == (Origin.DOMESTIC, CustomerStatus.ACTIVE,
                                                          LifecycleStage.PROSPECT)
        assert (c.tags, c.addresses, c.version) == ((), (), 1)

    @pytest.mark.parametrize("name", ["", "   ", "\u3000\t"])
    def test_name_required(self, name: str) -> None:
        with pytest.raises(InvalidArgument) as exc:
            normalise_customer(customer(name=name))
        assert violations(exc) == {"name": "is required"}

    def test_name_length_counted_after_cleanup(self) -> None:
        assert len(normalise_customer(customer(name="a" * 200 + "   ")).name) == 200
        with pytest.raises(InvalidArgument) as exc:
            normalise_customer(customer(name="a" * 201))
        assert set(violations(exc)) == {"name"}

    def test_region_too_long(self) -> None:
        with pytest.raises(InvalidArgument) as exc:
            normalise_customer(customer(region="r" * 101))
        assert set(violations(exc)) == {"region"}

    def test_owner_required(self) -> None:
        with pytest.raises(InvalidArgument) as exc:
            normalise_customer(customer(owner_id=""))
        assert violations(exc) == {"owner_id": "is required"}

    def test_all_violations_reported_at_once(self) -> None:
        with pytest.raises(InvalidArgument) as exc:
            normalise_customer(customer(
                name=" ", tax_id="123", region="x" * 101, tags=("ok", ""),
                addresses=(Address(kind=AddressKind.OFFICE, line="", country="China"),), owner_id=""))
        fields = [v.field for v in exc.value.violations]
        assert fields == ["name", "tax_id", "region", "tags", "addresses[0].line", "addresses[0].country",
                          "owner_id"]
        # The message summarises every problem too, for clients that only show the message.
        for field_name in fields:
            assert field_name in exc.value.message
        assert all(isinstance(v, FieldViolation) for v in exc.value.violations)


class TestTags:
    def test_deduplicated_case_insensitively_keeping_the_first_spelling(self) -> None:
        c = normalise_customer(customer(tags=("VIP", "vip", " Vip ", "ＶＩＰ", "export", "Export")))
        assert sorted(c.tags, key=str.casefold) == ["export", "VIP"]

    def test_cleaned(self) -> None:
        assert normalise_customer(customer(tags=("  key   account ",))).tags == ("key account",)

    def test_empty_tag_rejected(self) -> None:
        with pytest.raises(InvalidArgument) as exc:
            normalise_customer(customer(tags=("a", "  ")))
        assert violations(exc) == {"tags": "a tag cannot be empty"}

    def test_tag_length_limit(self) -> None:
        assert normalise_customer(customer(tags=("t" * MAX_TAG,))).tags == ("t" * MAX_TAG,)
        with pytest.raises(InvalidArgument) as exc:
            normalise_customer(customer(tags=("t" * (MAX_TAG + 1),)))
        assert "longer than 50 characters" in violations(exc)["tags"]

    def test_tag_count_limit_counts_distinct_tags(self) -> None:
        twenty = tuple(f"tag{i}" for i in range(MAX_TAGS))
        assert len(normalise_customer(customer(tags=twenty + tuple(t.upper() for t in twenty))).tags) == MAX_TAGS
        with pytest.raises(InvalidArgument) as exc:
            normalise_customer(customer(tags=(*twenty, "one-more")))
        assert violations(exc) == {"tags": f"at most {MAX_TAGS} tags"}


class TestAddresses:
    def test_country_upper_cased_and_defaulted_to_cn(self) -> None:
        c = normalise_customer(customer(addresses=(
            Address(kind=AddressKind.REGISTERED, line=" 1 Road ", city=" 福州 ", country=""),
            Address(kind=AddressKind.SHIPPING, line="Hauptstr. 1", country=" de "),
        )))
        assert [a.country for a in c.addresses] == ["CN", "DE"]
        assert c.addresses[0].line == "1 Road" and c.addresses[0].city == "福州"

    @pytest.mark.parametrize("country", ["CHN", "C", "China", "1A", "中国"])
    def test_country_must_be_alpha2(self, country: str) -> None:
        with pytest.raises(InvalidArgument) as exc:
            normalise_customer(customer(addresses=(
                Address(kind=AddressKind.OFFICE, line="ok"),
                Address(kind=AddressKind.OFFICE, line="x", country=country))))
        assert set(violations(exc)) == {"addresses[1].country"}
        assert "ISO 3166-1 alpha-2" in violations(exc)["addresses[1].country"]

    def test_line_required(self) -> None:
        with pytest.raises(InvalidArgument) as exc:
            normalise_customer(customer(addresses=(Address(kind=AddressKind.OFFICE, line=" "),)))
        assert violations(exc) == {"addresses[0].line": "is required"}

    def test_at_most_ten(self) -> None:
        many = tuple(Address(kind=AddressKind.OFFICE, line=f"line {i}") for i in range(MAX_ADDRESSES + 1))
        with pytest.raises(InvalidArgument) as exc:
            normalise_customer(customer(addresses=many))
        assert set(violations(exc)) == {"addresses"}


class TestChangedFields:
    def test_nothing_changed(self) -> None:
        c = normalise_customer(customer(tags=("a", "b")))
        assert changed_fields(c, c) == []

    def test_lists_changed_updatable_fields_sorted(self) -> None:
        before = normalise_customer(customer())
        after = normalise_customer(customer(id=before.id, name="Other", region="East", tags=("x",),
                                            status=CustomerStatus.CHANGED))
        assert changed_fields(before, after) == ["name", "region", "status", "tags"]

    def test_ignores_bookkeeping_fields(self) -> None:
        before = normalise_customer(customer())
        after = normalise_customer(customer(id=before.id, version=7, created_by="someone",
                                            updated_at=dt.datetime.now(dt.UTC)))
        assert changed_fields(before, after) == []

    def test_tag_order_is_not_a_change(self) -> None:
        # Tags are a set (R-CUS-04): re-sending them in another order changes nothing.
        before = normalise_customer(customer(tags=("b", "a")))
        after = normalise_customer(customer(id=before.id, tags=("a", "B")))
        assert changed_fields(before, after) == ["tags"]  # the spelling changed
        after = normalise_customer(customer(id=before.id, tags=("a", "b")))
        assert changed_fields(before, after) == []


# Contacts ------------------------------------------------------------------------------

def contact(**overrides: object) -> Contact:
    values: dict[str, object] = {"id": uuid.uuid4(), "customer_id": uuid.uuid4(), "name": "Wang Li"}
    return Contact(**(values | overrides))  # type: ignore[arg-type]


class TestContacts:
    def test_phones_normalised_to_e164_with_cn_default(self) -> None:
        c = normalise_contact(contact(phones=("138 0013 8000", "+86 138-0013-8000", "(010) 6552 9988",
                                               "+49 30 901820", "１３９００１３９０００")))
        # Duplicates after normalisation are dropped.
        assert c.phones == ("+8613800138000", "+861065529988", "+4930901820", "+8613900139000")

    def test_other_default_region(self) -> None:
        assert normalise_contact(contact(phones=("030 901820",)), default_region="DE").phones == ("+4930901820",)

    def test_invalid_phones_rejected_with_index(self) -> None:
        with pytest.raises(InvalidArgument) as exc:
            normalise_contact(contact(phones=("13800138000", "12345", "call me")))
        assert set(violations(exc)) == {"phones[1]", "phones[2]"}
        assert "'12345' is not a valid phone number" == violations(exc)["phones[1]"]

    def test_at_most_ten_phones(self) -> None:
        eleven = (*(f"1380013800{i}" for i in range(10)), "13900139000")
        with pytest.raises(InvalidArgument) as exc:
            normalise_contact(contact(phones=eleven))
        assert set(violations(exc)) == {"phones"}

    def test_email_normalised(self) -> None:
        assert normalise_contact(contact(email=" wang@Example.COM ")).email == "wang@example.com"

    @pytest.mark.parametrize("email", ["not-an-email", "a@b", "wang@@example.com", "wang@exa mple.com"])
    def test_invalid_email_rejected(self, email: str) -> None:
        with pytest.raises(InvalidArgument) as exc:
            normalise_contact(contact(email=email))
        assert set(violations(exc)) == {"email"}

    def test_all_contact_violations_at_once(self) -> None:
        with pytest.raises(InvalidArgument) as exc:
            normalise_contact(contact(name=" ", title="t" * 101, phones=("x",), email="nope",
                                      wechat="w" * 65))
        assert [v.field for v in exc.value.violations] == ["name", "title", "phones[0]", "email", "wechat"]

    def test_name_and_fields_cleaned(self) -> None:
        c = normalise_contact(contact(name=" 王\u3000丽 ", title=" 采购  经理 ", wechat=" wl_88 ", is_key=True))
        assert (c.name, c.title, c.wechat, c.is_key) == ("王 丽", "采购 经理", "wl_88", True)


# Follow-ups ----------------------------------------------------------------------------

NOW = dt.datetime(2026, 11, 25, 8, 0, tzinfo=dt.UTC)


def follow_up(**overrides: object) -> FollowUp:
    values: dict[str, object] = {"id": uuid.uuid4(), "customer_id": uuid.uuid4(), "kind": FollowUpKind.CALL,
                                 "occurred_at": NOW - dt.timedelta(hours=1), "summary": "Called",
                                 "author_id": "rep-east"}
    return FollowUp(**(values | overrides))  # type: ignore[arg-type]


class TestFollowUps:
    def test_valid_and_cleaned(self) -> None:
        f = normalise_follow_up(follow_up(summary="  Ｃａｌｌｅｄ   back ", content="  notes \n",
                                          key_facts=(" interested in  product X ", "", "  ", "budget Q1")),
                                NOW)
        assert f.summary == "Called back"
        assert f.content == "notes"
        assert f.key_facts == ("interested in product X", "budget Q1")

    def test_now_is_accepted(self) -> None:
        assert normalise_follow_up(follow_up(occurred_at=NOW), NOW).occurred_at == NOW

    @pytest.mark.parametrize("ahead", [dt.timedelta(hours=2), dt.timedelta(hours=23), dt.timedelta(days=2),
                                       dt.timedelta(days=365)])
    def test_future_rejected(self, ahead: dt.timedelta) -> None:
        with pytest.raises(InvalidArgument) as exc:
            normalise_follow_up(follow_up(occurred_at=NOW + ahead), NOW)
        assert set(violations(exc)) == {"occurred_at"}

    def test_a_little_clock_skew_is_tolerated(self) -> None:
        normalise_follow_up(follow_up(occurred_at=NOW + dt.timedelta(minutes=1)), NOW)

    def test_summary_required_and_bounded(self) -> None:
        with pytest.raises(InvalidArgument) as exc:
            normalise_follow_up(follow_up(summary=" "), NOW)
        assert violations(exc) == {"summary": "is required"}
        with pytest.raises(InvalidArgument) as exc:
            normalise_follow_up(follow_up(summary="s" * 501), NOW)
        assert set(violations(exc)) == {"summary"}

    def test_key_facts_limits(self) -> None:
        assert len(normalise_follow_up(follow_up(key_facts=("f",) * MAX_KEY_FACTS), NOW).key_facts) == 20
        for facts in [("f",) * (MAX_KEY_FACTS + 1), ("f" * 201,)]:
            with pytest.raises(InvalidArgument) as exc:
                normalise_follow_up(follow_up(key_facts=facts), NOW)
            assert set(violations(exc)) == {"key_facts"}

    def test_all_follow_up_violations_at_once(self) -> None:
        with pytest.raises(InvalidArgument) as exc:
            normalise_follow_up(follow_up(summary="", content="c" * 20_001,
                                          occurred_at=NOW + dt.timedelta(days=3), key_facts=("k" * 201,)), NOW)
        assert [v.field for v in exc.value.violations] == ["summary", "content", "occurred_at", "key_facts"]


# Masking (R-SEC-04) --------------------------------------------------------------------------

@pytest.mark.parametrize(("phone", "masked"), [
    ("+8613812345678", "+86138****5678"),
    ("+4930901820", "+49309*1820"),
    ("+85212345678", "+852123*5678"),
    ("+1234", "+1***"),  # too short to keep anything
])
def test_mask_phone(phone: str, masked: str) -> None:
    assert mask_phone(phone) == masked


def test_mask_tax_id_and_account_number() -> None:
    assert mask_tax_id("91350100M000100Y43") == "9135************43"
    assert mask_tax_id("DE 123") == "******" and mask_tax_id("") == ""
    assert mask_account_number("6222021234567890123") == "*" * 15 + "0123"
    assert mask_account_number("1234") == "****"


def test_masked_values_are_refused_as_input() -> None:
    with pytest.raises(InvalidArgument) as exc:
        normalise_customer(Customer(id=uuid.uuid4(), name="x", owner_id="o", team_id="", department_path="/",
                                    origin=Origin.FOREIGN, tax_id="DE12****89",
                                    bank_accounts=(BankAccount(bank_name="b", account_number="****1234"),)))
    assert [v.field for v in exc.value.violations] == ["tax_id", "bank_accounts[0].account_number"]
    with pytest.raises(InvalidArgument) as exc:
        normalise_contact(Contact(id=uuid.uuid4(), customer_id=uuid.uuid4(), name="x", phones=("+86138****5678",)))
    assert [v.field for v in exc.value.violations] == ["phones[0]"]
