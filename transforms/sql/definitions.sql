-- definitions: the rates every table reads, written once. Created as temporary macros on every
-- warehouse connection (transforms/definitions.py), so each consumer calls the same expression.
--
-- Counts are of actors (customers, bookings): `entered` reached this step, `previous` reached the
-- one before. A rate over nothing (a zero denominator) is NULL, never 0.

-- share of the actors at the previous step who reached this one
create or replace temp macro step_conversion(entered, previous) as
    entered / nullif(previous, 0);

-- share of the actors at the previous step who did not reach this one
create or replace temp macro dropout_rate(entered, previous) as
    1 - entered / nullif(previous, 0);

-- share of the actors at the first step who reached this one
create or replace temp macro overall_conversion(entered, first) as
    entered / nullif(first, 0);

-- share of payment attempts (outcome events: succeeded or failed) that failed
create or replace temp macro failure_rate(failures, attempts) as
    failures / nullif(attempts, 0);

-- share of purchasers who purchased again
create or replace temp macro repeat_rate(repeaters, purchasers) as
    repeaters / nullif(purchasers, 0);

-- share of the customers who reached a later stage who came back to this one afterwards
create or replace temp macro return_rate(came_back, reached_later) as
    came_back / nullif(reached_later, 0);
