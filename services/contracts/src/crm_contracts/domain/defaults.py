"""Fixed ids of what the first migration seeds."""

import uuid

DEFAULT_RULE_ID = uuid.UUID("01930000-0000-7000-8000-00000000a001")
DEFAULT_RULE_NAME = "Default: manager; from 100,000 also sales director and finance"
