Feature: A session records who entered what, and for how long
  sessionmeter keeps one record per visit: when someone entered, when they left and how.
  Watch time is the time between entering and leaving, never more: when a tab dies, the
  reaper closes its session where it was last seen (after 5 minutes without a sign of life),
  not when the reaper happens to notice.

  Background:
    Given a webinar platform that sends its viewers' visits to sessionmeter

  Scenario: A webinar viewer enters and leaves and their watch time is recorded
    Given viewer "ana" joined webinar "launch-day" 30 minutes ago
    When "ana" leaves 25 minutes after joining
    Then the visit of "ana" is completed
    And the watch time of "ana" is 1500 seconds

  Scenario: A viewer closes the tab and the beacon exit still counts
    Given viewer "ben" joined webinar "launch-day" 10 minutes ago
    When the tab of "ben" closes and the browser sends the exit as a beacon
    And the same exit of "ben" arrives a second time by fetch
    Then the visit of "ben" is abandoned
    And both exits report the same end of the visit of "ben"

  Scenario: A viewer's tab dies and the reaper closes the session where it was last seen
    Given viewer "cho" joined webinar "launch-day" 60 minutes ago
    And the tab of "cho" last gave a sign of life 40 minutes after joining
    When the reaper runs
    Then the visit of "cho" is timed out
    And the watch time of "cho" is 2400 seconds

  Scenario: A visitor who is not signed in is known by a browser key
    When a visitor who is not signed in opens webinar "launch-day" without a browser key
    Then the visit is refused because a browser key is required
    When a visitor who is not signed in opens webinar "launch-day" with browser key "tab-42"
    Then the visit is recorded for browser key "tab-42"

  Scenario: Another team cannot see our viewers' visits
    Given viewer "dan" joined webinar "launch-day" 5 minutes ago
    When another team looks up the visit of "dan"
    Then the visit is not found
