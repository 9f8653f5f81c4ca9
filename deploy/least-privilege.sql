-- The role the schemaheal worker needs: no superuser. Run as a superuser (or the database
-- owner) once per database the worker heals; replace nexus, nexus_owner, nexus_app and the
-- password.
--
-- nexus_owner owns the service's tables (the migrations' role of old). The worker is a member
-- of it, so it may alter those tables; tables the worker creates are its own, and default
-- privileges give the application role its usual access to them.

CREATE ROLE schemaheal LOGIN PASSWORD 'change-me' NOSUPERUSER NOCREATEDB NOCREATEROLE;

-- connect, create schemas (its ledger schema "schemaheal", and schemas a manifest adds),
-- and create the trusted extensions a manifest lists (citext, pg_trgm, …)
GRANT CONNECT, CREATE ON DATABASE nexus TO schemaheal;

-- alter the service's existing tables: membership in the role that owns them
GRANT nexus_owner TO schemaheal;

-- create tables and types in the service's schema
GRANT USAGE, CREATE ON SCHEMA public TO schemaheal;

-- what the worker creates, the application may use
ALTER DEFAULT PRIVILEGES FOR ROLE schemaheal IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO nexus_app;
ALTER DEFAULT PRIVILEGES FOR ROLE schemaheal IN SCHEMA public
    GRANT USAGE, SELECT ON SEQUENCES TO nexus_app;
