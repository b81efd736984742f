"""``python -m accsim.batch > docs/sweep_schema.json``: print the sweep-file JSON schema."""

import json

from accsim.batch.config import json_schema

print(json.dumps(json_schema(), indent=2, sort_keys=True))
