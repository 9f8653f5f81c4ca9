BEGIN;
SET LOCAL lock_timeout = '2000ms';
SET LOCAL statement_timeout = '60000ms';
CREATE SCHEMA IF NOT EXISTS app;
COMMIT;
BEGIN;
SET LOCAL lock_timeout = '2000ms';
SET LOCAL statement_timeout = '60000ms';
CREATE TABLE IF NOT EXISTS app.business_assets (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    tenant_id integer NOT NULL,
    content jsonb,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT business_assets_pkey PRIMARY KEY (id)
);
CREATE INDEX IF NOT EXISTS business_assets_tenant_id_idx ON app.business_assets USING btree (tenant_id);
CREATE INDEX IF NOT EXISTS ix_assets_content ON app.business_assets USING gin (content jsonb_path_ops);
COMMENT ON TABLE app.business_assets IS 'the seed''s business_assets';
COMMENT ON COLUMN app.business_assets.content IS 'generated content, cached';
COMMIT;
