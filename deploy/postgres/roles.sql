-- Two database roles for a production Postgres: the owner runs the migrations (`xray-db upgrade`: the
-- Kubernetes migration Job), the app role is what web, worker, recovery and the bridge connect as. The
-- app role reads and writes rows and nothing else: it owns no table, so it cannot DROP or ALTER one,
-- and it is granted no TRUNCATE. The audit log also refuses UPDATE, DELETE and TRUNCATE by trigger
-- (migrations 0003 and 0008), whoever asks; only its owner could disable those triggers.
--
-- Run once as a superuser, in the service's database, then give each role a password:
--   psql -v owner=xray_owner -v app=xray -v db=xray -d xray -f deploy/postgres/roles.sql
--   psql -d xray -c "\password xray_owner" -c "\password xray"
-- Then DATABASE_URL uses the app role and the migration Job's MIGRATION_DATABASE_URL the owner
-- (deploy/k8s/base/secret.example.yaml).
\set ON_ERROR_STOP on

CREATE ROLE :"owner" LOGIN;
CREATE ROLE :"app" LOGIN;
ALTER DATABASE :"db" OWNER TO :"owner";
GRANT CONNECT ON DATABASE :"db" TO :"app";
ALTER SCHEMA public OWNER TO :"owner";
GRANT USAGE ON SCHEMA public TO :"app";
REVOKE CREATE ON SCHEMA public FROM PUBLIC;

-- Tables and sequences the owner creates from now on (every migration) are open to the app for rows only.
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO :"app";
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO :"app";
-- And those that exist already (a database migrated before the roles were split).
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO :"app";
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO :"app";
