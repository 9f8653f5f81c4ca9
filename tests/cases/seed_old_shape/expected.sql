BEGIN;
SET LOCAL lock_timeout = '2000ms';
SET LOCAL statement_timeout = '60000ms';
CREATE TABLE IF NOT EXISTS public.business_assets (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    tenant_id integer NOT NULL,
    kind character varying(32) NOT NULL,
    content jsonb,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT business_assets_pkey PRIMARY KEY (id),
    CONSTRAINT business_assets_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES public.tenants (id)
);
CREATE INDEX IF NOT EXISTS ix_business_assets_content ON public.business_assets USING gin (content jsonb_path_ops);
COMMIT;
BEGIN;
SET LOCAL lock_timeout = '2000ms';
SET LOCAL statement_timeout = '60000ms';
ALTER TABLE public.chat_conversations ADD COLUMN IF NOT EXISTS customer_id character varying(128);
COMMIT;
BEGIN;
SET LOCAL lock_timeout = '2000ms';
SET LOCAL statement_timeout = '60000ms';
ALTER TABLE public.credentials ADD COLUMN IF NOT EXISTS scope character varying(64);
COMMIT;
BEGIN;
SET LOCAL lock_timeout = '2000ms';
SET LOCAL statement_timeout = '60000ms';
ALTER TABLE public.credentials ADD COLUMN IF NOT EXISTS category character varying(64);
COMMIT;
BEGIN;
SET LOCAL lock_timeout = '2000ms';
SET LOCAL statement_timeout = '60000ms';
ALTER TABLE public.tenants ADD COLUMN IF NOT EXISTS openai_api_key text;
COMMIT;
SET lock_timeout = '30000ms';
SET statement_timeout = '3600000ms';
CREATE INDEX CONCURRENTLY IF NOT EXISTS ix_chat_conversations_customer_id ON public.chat_conversations USING btree (customer_id);
SET lock_timeout = '30000ms';
SET statement_timeout = '3600000ms';
CREATE INDEX CONCURRENTLY IF NOT EXISTS ix_credentials_tenant_category ON public.credentials USING btree (tenant_id, category);
SET lock_timeout = '30000ms';
SET statement_timeout = '3600000ms';
CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS chat_conversations_tenant_id_customer_id_channel_key ON public.chat_conversations USING btree (tenant_id, customer_id, channel);
BEGIN;
SET LOCAL lock_timeout = '2000ms';
SET LOCAL statement_timeout = '60000ms';
ALTER TABLE public.chat_conversations ADD CONSTRAINT chat_conversations_tenant_id_customer_id_channel_key UNIQUE USING INDEX chat_conversations_tenant_id_customer_id_channel_key;
COMMIT;
