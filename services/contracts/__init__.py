"""The contracts package: the only code tpmap's services share.

- `records`: what agencies send (BMN households, welfare registrations, civil events), validated
  field by field;
- `events`: the envelope (CloudEvents attributes) and every event on the bus;
- `topics`: the topic registry (names, keys, partitions, cleanup policies);
- `areas`: area codes at five levels, parent chains, Thai and English names;
- `indicators`: the BMN indicator catalogue, TPMAP's dimensions, per-year sets and thresholds;
- `citizen_id`: check digits and masking for logs;
- `logs`: JSON log lines with citizen IDs masked;
- `settings`: the connection settings every service shares;
- `schemas`: JSON Schemas of all of the above (`python -m services.contracts schemas`).
"""
