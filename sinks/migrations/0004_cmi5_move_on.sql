-- cmi5 courses (docs/analytics.md, "cmi5 courses"): a lesson that is a cmi5 AU carries its moveOn
-- (NULL: an ordinary lesson) and is satisfied by the cmi5 outcomes of the statements about it,
-- which every fact now records: 'completed', 'passed' or 'waived' for a cmi5 defined statement
-- (category cmi5) with that verb whose object is the lesson; NULL otherwise. Facts of
-- installations from before this migration have no outcome until `lrs replay` rebuilds them.
ALTER TABLE lms.lessons
    ADD COLUMN move_on text CHECK (move_on IN ('Passed', 'Completed', 'CompletedAndPassed',
                                               'CompletedOrPassed', 'NotApplicable'));

ALTER TABLE lms.learning_facts
    ADD COLUMN outcome text CHECK (outcome IN ('completed', 'passed', 'waived'));
ALTER TABLE lms.learning_facts_replay
    ADD COLUMN outcome text CHECK (outcome IN ('completed', 'passed', 'waived'));
