"""Runs the whole CRM suite on one machine: embedded PostgreSQL and NATS, every service, the
gateway. `crm-dev` is the command line (`make dev`, `make token`, `make reset`); `Suite` is the
same thing for the e2e tests."""

from crm_devstack.suite import Suite, SuiteError

__all__ = ["Suite", "SuiteError"]
