"""What a reassignment or a merge of a customer means for other services' records (pure logic)."""

from __future__ import annotations

from google.protobuf.message import Message

from crm.customers.v1 import customers_pb2
from crm.customers.v1 import events_pb2 as ev
from crmkit.events.envelope import Event
from crmkit.references import CustomerMove, customer_moves


def _event(message: Message) -> Event:
    return Event(id="e-1", subject="crm.customers.x", type=message.DESCRIPTOR.full_name,
                 payload=message.SerializeToString(), headers={})


def test_a_reassigned_customers_records_move_into_the_new_owners_scope() -> None:
    customer = customers_pb2.Customer(id="c-1", owner_id="rep-west", team_id="west", department_path="/sales/west/")
    assert customer_moves(_event(ev.CustomerReassigned(customer=customer, previous_owner_id="rep-east"))) == [
        CustomerMove("c-1", "c-1", "rep-west", "west", "/sales/west/")]


def test_a_merged_customers_records_go_to_the_survivor_and_both_follow_its_owner() -> None:
    survivor = customers_pb2.Customer(id="c-2", owner_id="rep-east", team_id="east")
    moves = customer_moves(_event(ev.CustomersMerged(merged_id="c-1", surviving_id="c-2", surviving=survivor)))
    assert moves == [CustomerMove("c-1", "c-2", "rep-east", "east", "/"),
                     CustomerMove("c-2", "c-2", "rep-east", "east", "/")]


def test_other_events_move_nothing() -> None:
    assert customer_moves(_event(ev.CustomerUpdated())) == []
