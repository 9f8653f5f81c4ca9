-- Compose only: the roles of deploy/least-privilege.sql for the demo database, with the
-- seed's tables handed to their owner role. In production, run least-privilege.sql yourself.
CREATE ROLE nexus_owner NOLOGIN;
CREATE ROLE nexus_app NOLOGIN;
ALTER TABLE tenants OWNER TO nexus_owner;
ALTER TABLE tools OWNER TO nexus_owner;
ALTER TABLE credentials OWNER TO nexus_owner;
ALTER TABLE chat_media OWNER TO nexus_owner;
ALTER TABLE chat_conversations OWNER TO nexus_owner;
ALTER TABLE chat_messages OWNER TO nexus_owner;
\i /deploy/least-privilege.sql
ALTER ROLE schemaheal PASSWORD 'schemaheal';  -- the demo DSN in docker-compose.yml
