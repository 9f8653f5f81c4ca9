CREATE TABLE chat_conversations (id uuid PRIMARY KEY, tenant_id integer, customer_id varchar(128),
  display_name varchar(255), meta jsonb, last_message_at timestamptz, archived boolean NOT NULL DEFAULT false);
INSERT INTO chat_conversations VALUES ('00000000-0000-0000-0000-000000000001', 1, 'c1', 'Ana', '{}', now(), false);
-- an index left INVALID by a failed CREATE INDEX CONCURRENTLY: rebuilt, never kept by name
CREATE INDEX ix_conv_broken ON chat_conversations (tenant_id);
UPDATE pg_index SET indisvalid = false WHERE indexrelid = 'ix_conv_broken'::regclass;
-- an index the manifest does not know: reported, left alone
CREATE INDEX ix_conv_legacy ON chat_conversations (display_name);
