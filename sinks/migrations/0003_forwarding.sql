-- Statement forwarding (sinks/forward.py): rules managed by `lrs forward`, the queue the forward
-- sink fills in the same transaction as its watermark (lms.sink_watermarks, sink 'forward'), and
-- each rule's delivery state. Delivered statements stay as ids (body dropped) for
-- LRS_FORWARD_KEEP_DAYS, so a voiding statement follows the statement it voids to the same target.
CREATE TABLE lms.forward_rules (
    id           serial PRIMARY KEY,
    name         text NOT NULL UNIQUE,
    kind         text NOT NULL CHECK (kind IN ('lrs', 'webhook')),
    url          text NOT NULL,
    auth         text,                          -- lrs: KEY:SECRET of the target's credential
    secret       text,                          -- webhook: the HMAC-SHA256 key
    filter       jsonb NOT NULL DEFAULT '{}',   -- verbs, activity_prefixes, agents, registrations
    batch_size   integer NOT NULL DEFAULT 100 CHECK (batch_size > 0),
    paused       boolean NOT NULL DEFAULT false,
    created      timestamptz NOT NULL DEFAULT now(),   -- statements stored from then on are forwarded
    failures     integer NOT NULL DEFAULT 0,           -- consecutive failed deliveries
    next_attempt timestamptz,                          -- the backoff: no delivery before
    single       boolean NOT NULL DEFAULT false,       -- after a refusal: one statement at a time
    last_error   text,
    lease_owner  text,                                 -- the worker delivering for this rule
    lease_until  timestamptz
);

CREATE TABLE lms.forward_queue (
    rule_id      integer NOT NULL REFERENCES lms.forward_rules ON DELETE CASCADE,
    statement_id uuid NOT NULL,
    position     text NOT NULL,           -- store order (sinks/positions.py): delivery order
    stored       timestamptz NOT NULL,
    state        text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sent', 'dead')),
    body         bytea,                   -- the statement (JSON); NULL once sent
    attempts     integer NOT NULL DEFAULT 0,
    error        text,
    queued       timestamptz NOT NULL DEFAULT now(),
    done_at      timestamptz,
    PRIMARY KEY (rule_id, statement_id)
);
CREATE INDEX forward_queue_pending ON lms.forward_queue (rule_id, position) WHERE state = 'pending';
CREATE INDEX forward_queue_done ON lms.forward_queue (done_at) WHERE state = 'sent';
CREATE INDEX forward_queue_statement ON lms.forward_queue (statement_id);
