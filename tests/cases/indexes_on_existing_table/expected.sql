SET lock_timeout = '30000ms';
SET statement_timeout = '3600000ms';
DROP INDEX CONCURRENTLY IF EXISTS public.ix_conv_broken;
SET lock_timeout = '30000ms';
SET statement_timeout = '3600000ms';
CREATE INDEX CONCURRENTLY IF NOT EXISTS ix_conv_broken ON public.chat_conversations USING btree (tenant_id);
SET lock_timeout = '30000ms';
SET statement_timeout = '3600000ms';
CREATE INDEX CONCURRENTLY IF NOT EXISTS ix_conv_customer ON public.chat_conversations USING btree (customer_id);
SET lock_timeout = '30000ms';
SET statement_timeout = '3600000ms';
CREATE INDEX CONCURRENTLY IF NOT EXISTS ix_conv_meta ON public.chat_conversations USING gin (meta jsonb_path_ops);
SET lock_timeout = '30000ms';
SET statement_timeout = '3600000ms';
CREATE INDEX CONCURRENTLY IF NOT EXISTS ix_conv_name_lower ON public.chat_conversations USING btree ((lower(display_name)));
SET lock_timeout = '30000ms';
SET statement_timeout = '3600000ms';
CREATE INDEX CONCURRENTLY IF NOT EXISTS ix_conv_recent ON public.chat_conversations USING btree (tenant_id, last_message_at DESC) INCLUDE (display_name) WHERE NOT archived;
-- drift extra-index public.chat_conversations.ix_conv_legacy
