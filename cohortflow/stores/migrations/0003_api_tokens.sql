-- Bearer tokens of the read API: only a SHA-256 of each token is stored.
CREATE TABLE api_tokens (
    token_hash  text        PRIMARY KEY,        -- hex SHA-256 of the token
    name        text        NOT NULL UNIQUE,
    scopes      text[]      NOT NULL CHECK (cardinality(scopes) > 0),
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);
COMMENT ON TABLE api_tokens IS 'Read API tokens (hash only); cohortflow tokens create|list|revoke.';
