-- Billing data contract of the Azərsu statement service: Oracle Database 12c and later.
--
-- In production the billing DBA provides SUBSCRIBER, INVOICE and PAYMENT as
-- views with exactly these columns over the tables of the billing system, in
-- the schema the service is configured with, and grants the service account
-- SELECT on them:
--     GRANT SELECT ON BILLING.SUBSCRIBER TO AZERSU_STATEMENT  (and INVOICE, PAYMENT)
-- The statement service only reads: it never inserts, updates or deletes.  This
-- script creates the same relations as plain tables for a demo or test
-- database (service/billing/tables.py describes them to the service).
--
-- Identifiers are unquoted, so Oracle stores them in upper case as the
-- contract spells them. The service names them in lower case, unquoted, which
-- Oracle resolves to the same objects.  Amounts are AZN with two decimals
-- (qəpik), volumes are m³ with three decimals (litres).  Text columns use
-- character length semantics (VARCHAR2(n CHAR)) because Azerbaijani letters
-- (ə ğ ı İ ö ş ç ü) take two bytes in AL32UTF8, and the database character set
-- must be AL32UTF8 (otherwise use NVARCHAR2).  DATE columns hold midnight.

-- One row per subscriber account (residential and non-residential).
CREATE TABLE SUBSCRIBER (
    SUBSCRIBER_CODE  VARCHAR2(32 CHAR)   NOT NULL,  -- digits, 6 to 12 of them
    FIN              VARCHAR2(7 CHAR),              -- personal ID number: 7 of [A-HJ-NP-Z0-9]
    LAST_NAME        VARCHAR2(100 CHAR)  NOT NULL,
    FIRST_NAME       VARCHAR2(100 CHAR)  NOT NULL,
    PATRONYMIC       VARCHAR2(100 CHAR),            -- <name of the father> oğlu | qızı
    ADDRESS          VARCHAR2(400 CHAR)  NOT NULL,
    PERSONS_COUNT    NUMBER(3)           NOT NULL,  -- persons served
    CATEGORY         VARCHAR2(16 CHAR)   NOT NULL,  -- RESIDENTIAL | NON_RESIDENTIAL
    STATUS           VARCHAR2(8 CHAR)    NOT NULL,  -- ACTIVE | CLOSED
    OPENED_ON        DATE                NOT NULL,
    WATER_SUPPLY     NUMBER(1)           NOT NULL,  -- 1 = water supply contracted, 0 = not
    WASTEWATER       NUMBER(1)           NOT NULL,  -- 1 = wastewater contracted, 0 = not
    METER_TYPE       VARCHAR2(16 CHAR)   NOT NULL,  -- MECHANICAL | SMART_CARD | NONE (billed by the norm)
    CONSTRAINT PK_SUBSCRIBER PRIMARY KEY (SUBSCRIBER_CODE)
);

-- One row per subscriber, billing month and service.
CREATE TABLE INVOICE (
    SUBSCRIBER_CODE  VARCHAR2(32 CHAR)  NOT NULL,
    PERIOD_YEAR      NUMBER(4)          NOT NULL,
    PERIOD_MONTH     NUMBER(2)          NOT NULL,  -- 1 to 12
    SERVICE          VARCHAR2(16 CHAR)  NOT NULL,  -- WATER | WASTEWATER
    CONSUMPTION_M3   NUMBER(14,3)       NOT NULL,
    AMOUNT           NUMBER(14,2)       NOT NULL   -- AZN
);

CREATE INDEX IX_INVOICE_SUB_PERIOD ON INVOICE (SUBSCRIBER_CODE, PERIOD_YEAR, PERIOD_MONTH);
CREATE INDEX IX_INVOICE_PERIOD ON INVOICE (PERIOD_YEAR, PERIOD_MONTH);

-- One row per payment received (smart-card top-ups included).
CREATE TABLE PAYMENT (
    SUBSCRIBER_CODE  VARCHAR2(32 CHAR)  NOT NULL,
    PAID_ON          DATE               NOT NULL,
    AMOUNT           NUMBER(14,2)       NOT NULL   -- AZN
);

CREATE INDEX IX_PAYMENT_SUB_PAID ON PAYMENT (SUBSCRIBER_CODE, PAID_ON);
