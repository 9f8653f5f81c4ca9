-- The seed's platform before Protocol Omega healed it: what a long-lived production database
-- looks like. tenants has no openai_api_key, credentials has neither scope nor category,
-- chat_conversations has no customer_id, and business_assets does not exist yet.
CREATE TABLE tenants (
    id SERIAL PRIMARY KEY,
    name VARCHAR(255) NOT NULL,
    slug VARCHAR(64) NOT NULL UNIQUE,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE TABLE tools (
    id SERIAL PRIMARY KEY,
    tenant_id INTEGER NOT NULL REFERENCES tenants(id),
    name VARCHAR(128) NOT NULL,
    config JSONB NOT NULL DEFAULT '{}'::jsonb,
    enabled BOOLEAN NOT NULL DEFAULT true
);
CREATE INDEX ix_tools_tenant_id ON tools (tenant_id);
CREATE TABLE credentials (
    id SERIAL PRIMARY KEY,
    tenant_id INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    provider VARCHAR(64) NOT NULL,
    secret TEXT NOT NULL
);
CREATE TABLE chat_media (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id INTEGER REFERENCES tenants(id),
    url TEXT NOT NULL,
    mime_type VARCHAR(128),
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE TABLE chat_conversations (
    id UUID PRIMARY KEY,
    tenant_id INTEGER REFERENCES tenants(id),
    channel VARCHAR(32) NOT NULL,
    channel_source VARCHAR(32) NOT NULL DEFAULT 'whatsapp',
    display_name VARCHAR(255),
    meta JSONB DEFAULT '{}',
    last_message_preview TEXT,
    last_message_at TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE TABLE chat_messages (
    id UUID PRIMARY KEY,
    conversation_id UUID REFERENCES chat_conversations(id) ON DELETE CASCADE,
    role VARCHAR(32) NOT NULL,
    message_type VARCHAR(32) NOT NULL DEFAULT 'text',
    content TEXT,
    media_id UUID REFERENCES chat_media(id),
    channel_source VARCHAR(32) DEFAULT 'whatsapp',
    meta JSONB DEFAULT '{}',
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Data that must survive every heal.
INSERT INTO tenants (name, slug) VALUES ('Acme', 'acme'), ('Globex', 'globex');
INSERT INTO tools (tenant_id, name) VALUES (1, 'search'), (2, 'crm');
INSERT INTO credentials (tenant_id, provider, secret) VALUES (1, 'openai', 'sk-acme');
INSERT INTO chat_conversations (id, tenant_id, channel) VALUES
    ('00000000-0000-0000-0000-000000000001', 1, 'whatsapp');
INSERT INTO chat_messages (id, conversation_id, role, content) VALUES
    ('00000000-0000-0000-0000-0000000000a1', '00000000-0000-0000-0000-000000000001', 'user', 'hola');
