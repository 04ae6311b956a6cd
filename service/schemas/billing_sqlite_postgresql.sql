-- Billing data contract of the Azərsu statement service: SQLite and PostgreSQL 15.
--
-- In production the billing DBA provides SUBSCRIBER, INVOICE and PAYMENT as
-- views with exactly these columns over the tables of the billing system, and
-- grants the service account SELECT on them.  The statement service only
-- reads: it never inserts, updates or deletes.  This script creates the same
-- relations as plain tables for a demo or test database; `azersu-statement
-- init-demo` creates the same tables (from service/billing/tables.py) and
-- fills them with synthetic data.
--
-- Identifiers are unquoted: PostgreSQL folds them to lower case and SQLite
-- ignores case, which is how the service names them.  Amounts are AZN with two
-- decimals (qəpik), volumes are m³ with three decimals (litres).  Text is
-- UTF-8 (names and addresses use ə ğ ı İ ö ş ç ü).  The script is valid in
-- both databases as is: run it with `sqlite3 FILE < billing_sqlite_postgresql.sql`
-- or `psql -f billing_sqlite_postgresql.sql`.

-- One row per subscriber account (residential and non-residential).
CREATE TABLE SUBSCRIBER (
    SUBSCRIBER_CODE  VARCHAR(32)   NOT NULL,  -- digits, 6 to 12 of them
    FIN              VARCHAR(7),              -- personal ID number: 7 of [A-HJ-NP-Z0-9]
    LAST_NAME        VARCHAR(100)  NOT NULL,
    FIRST_NAME       VARCHAR(100)  NOT NULL,
    PATRONYMIC       VARCHAR(100),            -- <name of the father> oğlu | qızı
    ADDRESS          VARCHAR(400)  NOT NULL,
    PERSONS_COUNT    INTEGER       NOT NULL,  -- persons served
    CATEGORY         VARCHAR(16)   NOT NULL,  -- RESIDENTIAL | NON_RESIDENTIAL
    STATUS           VARCHAR(8)    NOT NULL,  -- ACTIVE | CLOSED
    OPENED_ON        DATE          NOT NULL,
    WATER_SUPPLY     INTEGER       NOT NULL,  -- 1 = water supply contracted, 0 = not
    WASTEWATER       INTEGER       NOT NULL,  -- 1 = wastewater contracted, 0 = not
    METER_TYPE       VARCHAR(16)   NOT NULL,  -- MECHANICAL | SMART_CARD | NONE (billed by the norm)
    CONSTRAINT PK_SUBSCRIBER PRIMARY KEY (SUBSCRIBER_CODE)
);

-- One row per subscriber, billing month and service.
CREATE TABLE INVOICE (
    SUBSCRIBER_CODE  VARCHAR(32)    NOT NULL,
    PERIOD_YEAR      INTEGER        NOT NULL,
    PERIOD_MONTH     INTEGER        NOT NULL,  -- 1 to 12
    SERVICE          VARCHAR(16)    NOT NULL,  -- WATER | WASTEWATER
    CONSUMPTION_M3   NUMERIC(14,3)  NOT NULL,
    AMOUNT           NUMERIC(14,2)  NOT NULL   -- AZN
);

CREATE INDEX IX_INVOICE_SUB_PERIOD ON INVOICE (SUBSCRIBER_CODE, PERIOD_YEAR, PERIOD_MONTH);
CREATE INDEX IX_INVOICE_PERIOD ON INVOICE (PERIOD_YEAR, PERIOD_MONTH);

-- One row per payment received (smart-card top-ups included).
CREATE TABLE PAYMENT (
    SUBSCRIBER_CODE  VARCHAR(32)    NOT NULL,
    PAID_ON          DATE           NOT NULL,
    AMOUNT           NUMERIC(14,2)  NOT NULL   -- AZN
);

CREATE INDEX IX_PAYMENT_SUB_PAID ON PAYMENT (SUBSCRIBER_CODE, PAID_ON);
