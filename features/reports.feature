@reports
Feature: Reports for the people who read them
  The webinar team and the kiosk operator ask their own questions of the same sessions and
  events.

  Rule: The webinar team reads watch time per viewer and activity per webinar
    Per viewer: how often they came, how long they stayed in total and on average, and the time
    they actually watched when two tabs overlapped. Per webinar: sessions, unique viewers,
    average duration, viewers now and the peak. Either can be read per agency instead.

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

    Scenario: The webinar team reads a webinar's watch time per agency
      The platform runs webinars for several agencies and tells each visit's agency; declared
      as a dimension, it splits the watch time. An agency's figures add up its viewers': a
      viewer's overlapping tabs count once, two viewers watching at once count twice. Visits
      that named no agency are counted apart, last.
      Given the webinar team's reports keep agencies apart
      And these visits to webinar "launch-day":
        | who | agency | from minute | to minute |
        | ana | north  | 0           | 10        |
        | ana | north  | 5           | 20        |
        | ben | north  | 2           | 3         |
        | cho | south  | 0           | 30        |
        | dan |        | 0           | 15        |
      When an analyst asks for the watch time of webinar "launch-day" per agency
      Then the watch time per agency reads:
        | agency    | visits | seconds in total | on average | watched |
        | north     | 3      | 1560             | 520        | 1260    |
        | south     | 1      | 1800             | 1800       | 1800    |
        | no agency | 1      | 900              | 900        | 900     |

  Rule: The kiosk operator sees where in the funnel customers give up
    A customer at a photo kiosk goes through its screens in order: frame → background →
    character → capture → review → payment → print. A screen counts once the one before it was
    reached (coming back to a screen, or touching a later one too early, moves nothing). A
    customer who did not complete gave up at the last screen they reached.

    Background:
      Given the operator defines the photo kiosk's funnel:
        | stage      | event        | label      |
        | frame      | screen_enter | frame      |
        | background | screen_enter | background |
        | character  | screen_enter | character  |
        | capture    | capture      |            |
        | review     | screen_enter | review     |
        | payment    | payment      |            |
        | print      | print        |            |

    @kiosk
    Scenario: Customers who give up are counted at the last screen they reached
      Given these customers at the kiosk today:
        | customer | screens, in the order they saw them                           | seconds on each | how it ended |
        | 1        | frame, background, character, capture, review, payment, print | 30              | completed    |
        | 2        | frame, background, character, capture, review, payment, print | 60              | completed    |
        | 3        | frame, background, character, capture, review                 | 90              | abandoned    |
        | 4        | frame, background                                             | 60              | abandoned    |
        | 5        | frame                                                         | 60              | cancelled    |
        | 6        |                                                               | 60              | abandoned    |
      When the operator asks for the funnel report
      Then the funnel reads:
        | stage      | reached | from previous | from start | gave up here | median seconds |
        | frame      | 5       | 83.33%        | 83.33%     | 1            | 60             |
        | background | 4       | 80%           | 66.67%     | 1            | 60             |
        | character  | 3       | 75%           | 50%        | 0            | 60             |
        | capture    | 3       | 100%          | 50%        | 0            | 60             |
        | review     | 3       | 100%          | 50%        | 1            | 45             |
        | payment    | 2       | 66.67%        | 33.33%     | 0            | 45             |
        | print      | 2       | 100%          | 33.33%     | 0            |                |
      And the sessions ended like this:
        | completed | abandoned | cancelled | failed | active |
        | 2         | 3         | 1         | 0      | 0      |

    @kiosk
    Scenario: A screen touched too early, or seen again, moves no one along
      Given these customers at the kiosk today:
        | customer | screens, in the order they saw them     | seconds on each | how it ended |
        | 1        | capture, frame, background, frame       | 60              | abandoned    |
        | 2        | frame, character, background, character | 60              | abandoned    |
      When the operator asks for the funnel report
      Then the funnel reads:
        | stage      | reached | gave up here |
        | frame      | 2       | 0            |
        | background | 2       | 1            |
        | character  | 1       | 1            |
        | capture    | 0       | 0            |

    @kiosk
    Scenario: A customer still at the kiosk counts at the screen they are on until they complete
      Given these customers at the kiosk today:
        | customer | screens, in the order they saw them | seconds on each | how it ended |
        | 1        | frame, background, character        | 60              | still there  |
      When the operator asks for the funnel report
      Then the funnel reads:
        | stage     | reached | gave up here |
        | character | 1       | 1            |
      And the sessions ended like this:
        | completed | active |
        | 0         | 1      |

  Rule: The kiosk operator reads each store's usage by the days of Seoul
    A tenant in Seoul counts Seoul's days: one starts at midnight there, 15:00 UTC the day
    before. The stores are a dimension the tenant declares, so the rollups keep them apart and
    the day's usage reads per store. A session's time counts in the day it fell in.

    @kiosk
    Scenario: Sessions late in the evening and after midnight fall into Seoul's days, per store
      Given a kiosk operator in Seoul whose reports keep stores apart
      And these booth sessions, in Seoul's time:
        | store | day          | from  | to    |
        | S1    | two days ago | 23:00 | 23:20 |
        | S1    | two days ago | 23:50 | 00:10 |
        | S2    | yesterday    | 01:00 | 01:30 |
      When the usage is rolled up and the operator asks for it by day and store
      Then the usage reads:
        | day          | store | sessions started | sessions ended | minutes |
        | two days ago | S1    | 2                | 1              | 30      |
        | yesterday    | S1    | 0                | 1              | 10      |
        | yesterday    | S2    | 1                | 1              | 30      |

    @kiosk
    Scenario: The day's summary per store: who came, who finished, how long they stayed
      A session counts as started on the day it started, and as completed or abandoned on the
      day it ended; its duration runs from its start to its end.
      Given a kiosk operator in Seoul whose reports keep stores apart
      And these booth sessions, in Seoul's time:
        | store | day          | from  | to    | how it ended |
        | S1    | yesterday    | 10:00 | 10:10 | completed    |
        | S1    | yesterday    | 11:00 | 11:30 | abandoned    |
        | S1    | yesterday    | 12:00 | 12:20 | completed    |
        | S2    | two days ago | 23:50 | 00:10 | completed    |
        | S2    | yesterday    | 18:00 | 18:40 | abandoned    |
      When the usage is rolled up and the operator asks for the summary of yesterday
      Then the summary reads:
        | store | sessions started | completed | abandoned | completion rate | average minutes |
        | S1    | 3                | 2         | 1         | 67%             | 20              |
        | S2    | 1                | 1         | 1         | 50%             | 30              |
