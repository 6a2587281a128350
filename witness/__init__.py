"""A C2SP tlog-witness: cosigns checkpoints of the logs it trusts that extend
what it cosigned before. Independent of the ledger: it uses only the pure
`jejak.audit` modules, its own key and its own SQLite state."""
