-- The SQL that the Azərsu statement service runs against billing, as compiled
-- for Oracle (python-oracledb, bind variables :name), default relation names,
-- no schema.  Generated from service/billing/statement_query.py; do not edit.
-- Regenerate after reviewing a change:
--   .venv/bin/python -m tests.test_oracle_sql > service/schemas/billing_queries.oracle.sql

-- subscriber
SELECT subscriber.subscriber_code, subscriber.fin, subscriber.last_name, subscriber.first_name, subscriber.patronymic, subscriber.address, subscriber.persons_count, subscriber.category, subscriber.status, subscriber.opened_on, subscriber.water_supply, subscriber.wastewater, subscriber.meter_type
FROM subscriber
WHERE subscriber.subscriber_code = :code;

-- invoices
-- constants bound by the service: :period_year_1 = 100
SELECT invoice.period_year, invoice.period_month, invoice.service, invoice.consumption_m3, invoice.amount
FROM invoice
WHERE invoice.subscriber_code = :code AND invoice.period_year >= :first_year AND invoice.period_year <= :last_year AND invoice.period_year * :period_year_1 + invoice.period_month >= :first_key AND invoice.period_year * :period_year_1 + invoice.period_month <= :last_key;

-- payments
SELECT payment.paid_on, payment.amount
FROM payment
WHERE payment.subscriber_code = :code AND payment.paid_on >= :start_day AND payment.paid_on < :end_day;

-- latest_year
SELECT max(invoice.period_year) AS max_1
FROM invoice;

-- latest_month
SELECT max(invoice.period_month) AS max_1
FROM invoice
WHERE invoice.period_year = :year;
