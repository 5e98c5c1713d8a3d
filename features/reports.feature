@reports
Feature: Watch-time reports for a webinar platform
  Per viewer: how often they came, how long they stayed in total and on average, and the time
  they actually watched when two tabs overlapped. Per webinar: sessions, unique viewers,
  average duration, viewers now and the peak.

  Background:
    Given a webinar platform that sends its viewers' visits to sessionmeter

  Scenario: A viewer with two overlapping tabs is counted once for the time watched
    Given viewer "ana" watched webinar "launch-day" from minute 0 to minute 10
    And viewer "ana" watched webinar "launch-day" from minute 5 to minute 20 in a second tab
    And viewer "ana" watched webinar "launch-day" from minute 30 to minute 40
    And viewer "ben" watched webinar "launch-day" from minute 2 to minute 3
    When an analyst asks for the watch time of webinar "launch-day"
    Then "ana" made 3 visits for 2100 seconds in total, 700 on average, and watched 1800 seconds
    And "ben" made 1 visit for 60 seconds in total, 60 on average, and watched 60 seconds

  Scenario: A webinar's sessions, viewers, viewers now and the peak
    Given viewer "ana" watched webinar "launch-day" from minute 0 to minute 10
    And viewer "ana" watched webinar "launch-day" from minute 5 to minute 20 in a second tab
    And viewer "ben" watched webinar "launch-day" from minute 8 to minute 12
    And viewer "cho" has been watching webinar "launch-day" since minute 15
    When an analyst asks for the webinars report
    Then webinar "launch-day" had 4 sessions from 3 viewers, 580 seconds on average
    And 1 viewer is watching "launch-day" now, and at most 3 watched at once

  Scenario: The webinar team counts unique visitors, anonymous browsers included
    Viewers who did not sign in are told apart by their browser's key: each browser is one
    visitor however often it came back, and a viewer who signed in is one visitor.
    Given these visits to webinar "open-house":
      | who       | signed in | from minute | to minute |
      | ana       | yes       | 0           | 10        |
      | ana       | yes       | 20          | 30        |
      | browser-1 | no        | 0           | 5         |
      | browser-1 | no        | 6           | 9         |
      | browser-2 | no        | 3           | 4         |
    When an analyst asks for the webinars report
    Then webinar "open-house" had 5 sessions from 3 unique visitors, 1 of them signed in
    And the sessions of browser "browser-1" are listed apart

  Scenario: The webinar team counts the sessions that really ended
    A session still going has not ended, however long ago it started; one that was left or
    timed out has.
    Given these visits to webinar "open-house":
      | who       | signed in | from minute | to minute |
      | ana       | yes       | 0           | 10        |
      | ben       | yes       | 5           |           |
      | browser-1 | no        | 3           | 4         |
      | browser-2 | no        | 6           |           |
    When an analyst asks for the webinars report
    Then 2 of the 4 sessions of webinar "open-house" really ended, and 2 are still going
