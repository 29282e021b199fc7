-- Events applied to an entity since its row in entity_state was written (docs/semantics.md, "State
-- tails"): a large entity is rewritten every few events instead of on every batch. Loading an entity
-- replays its tail, in seq order, onto its state; writing its state deletes its tail.
CREATE TABLE entity_tail (
    kind  "char"  NOT NULL,  -- as entity_state
    id    text    NOT NULL,
    seq   integer NOT NULL,  -- order of application, from 0 after each write of the state
    topic text    NOT NULL,  -- the event's topic without prefix (cohortflow/contract/topics.py)
    value bytea   NOT NULL,  -- the record's value as published
    PRIMARY KEY (kind, id, seq)
);
