-- Optional: record every DDL statement run in this database, so that `schemaheal replay` can tell
-- the worker's schema changes from everyone else's ("ddl-outside-worker" mismatches).
--
-- Run once per database, as a superuser (only superusers create event triggers):
--     psql "$DSN" -v ON_ERROR_STOP=1 -f deploy/ddl-audit.sql
-- The log lives in its own schema, schemaheal_audit (the worker's ledger schema stays the
-- worker's). The role `schemaheal replay` connects as needs to read it:
--     GRANT USAGE ON SCHEMA schemaheal_audit TO schemaheal;
--     GRANT SELECT ON schemaheal_audit.ddl_log TO schemaheal;
-- The worker's connections name themselves "schemaheal …" (application_name); a change from any
-- other session is reported. application_name is set by the client, so this tells mistakes and
-- drift apart from the worker's work; it is no defence against someone who hides on purpose.
-- Idempotent: running it again changes nothing.

CREATE SCHEMA IF NOT EXISTS schemaheal_audit;

CREATE TABLE IF NOT EXISTS schemaheal_audit.ddl_log (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at timestamptz NOT NULL DEFAULT clock_timestamp(),
    username text NOT NULL DEFAULT session_user,
    application text NOT NULL DEFAULT current_setting('application_name'),
    command text NOT NULL,
    object text,
    schema_name text
);
CREATE INDEX IF NOT EXISTS ddl_log_at_idx ON schemaheal_audit.ddl_log (at);

CREATE OR REPLACE FUNCTION schemaheal_audit.log_ddl() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT * FROM pg_event_trigger_ddl_commands() LOOP
        IF r.schema_name IS DISTINCT FROM 'schemaheal_audit'
           AND coalesce(r.schema_name, '') NOT LIKE 'pg\_temp%' THEN
            INSERT INTO schemaheal_audit.ddl_log (command, object, schema_name)
            VALUES (r.command_tag, r.object_identity, r.schema_name);
        END IF;
    END LOOP;
END
$$;

CREATE OR REPLACE FUNCTION schemaheal_audit.log_drop() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT * FROM pg_event_trigger_dropped_objects() WHERE original LOOP
        IF r.schema_name IS DISTINCT FROM 'schemaheal_audit'
           AND coalesce(r.schema_name, '') NOT LIKE 'pg\_temp%' THEN
            INSERT INTO schemaheal_audit.ddl_log (command, object, schema_name)
            VALUES ('DROP ' || upper(r.object_type), r.object_identity, r.schema_name);
        END IF;
    END LOOP;
END
$$;

REVOKE ALL ON FUNCTION schemaheal_audit.log_ddl() FROM PUBLIC;
REVOKE ALL ON FUNCTION schemaheal_audit.log_drop() FROM PUBLIC;

DROP EVENT TRIGGER IF EXISTS schemaheal_ddl_log;
CREATE EVENT TRIGGER schemaheal_ddl_log ON ddl_command_end
    EXECUTE FUNCTION schemaheal_audit.log_ddl();
DROP EVENT TRIGGER IF EXISTS schemaheal_drop_log;
CREATE EVENT TRIGGER schemaheal_drop_log ON sql_drop
    EXECUTE FUNCTION schemaheal_audit.log_drop();
