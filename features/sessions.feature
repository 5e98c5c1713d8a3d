@sessions
Feature: A session records who entered what, and for how long
  sessionmeter keeps one record per visit: when someone entered, when they left and how.
  Watch time is the time between entering and leaving, never more: when a tab dies, the
  reaper closes its session where it was last seen (after 5 minutes without a sign of life),
  not when the reaper happens to notice. Browsers retry and send exits twice; a visit still
  counts once.

  Background:
    Given a webinar platform that sends its viewers' visits to sessionmeter

  Scenario: A webinar viewer enters and leaves and their watch time is recorded
    Given viewer "ana" joins webinar "launch-day"
    When 25 minutes pass
    And "ana" leaves
    Then the visit of "ana" is completed
    And the watch time of "ana" is 1500 seconds

  Scenario: A viewer closes the tab and the beacon exit still counts, once
    Given viewer "ben" joins webinar "launch-day"
    And 10 minutes pass
    When "ben" closes the tab after 3 chat messages and the browser sends the exit as a beacon
    And 2 seconds pass
    And the same exit of "ben" arrives a second time by fetch
    Then the visit of "ben" is abandoned
    And the watch time of "ben" is 600 seconds
    And both exits report the same end of the visit of "ben"
    And the visit of "ben" counts 3 chat messages

  Scenario: A viewer's tab dies and the reaper closes the session where it was last seen
    Given viewer "cho" joins webinar "launch-day"
    And viewer "dan" joins webinar "launch-day"
    And both tabs send a sign of life every minute for 40 minutes
    When the tab of "cho" dies while "dan" keeps watching for another 20 minutes
    And the reaper runs
    Then the visit of "cho" is timed out
    And the watch time of "cho" is 2400 seconds
    And the visit of "dan" is active

  Scenario: A browser retries the start of a visit and one visit is recorded
    Given viewer "eve" joins webinar "launch-day" with a visit id her browser made up
    When 3 seconds pass
    And the answer was lost, so the browser starts the same visit again
    Then the browser is told about the visit it started first
    And "eve" has 1 visit of webinar "launch-day"

  Scenario: A visitor who is not signed in is known by a browser key
    When a visitor who is not signed in opens webinar "launch-day" without a browser key
    Then the visit is refused because a browser key is required
    When a visitor who is not signed in opens webinar "launch-day" with browser key "tab-42"
    Then the visit is recorded for browser key "tab-42"

  Scenario: Another team cannot see our viewers' visits
    Given viewer "fay" joins webinar "launch-day"
    When another team looks up the visit of "fay"
    Then the visit is not found
