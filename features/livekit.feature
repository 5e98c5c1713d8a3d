@livekit
Feature: A LiveKit server reports who was in its rooms, and each stay is recorded once
  A bootcamp runs its own LiveKit server. Its webhooks tell sessionmeter who joined and left
  which room and when; each participant's stay in a room becomes one session, timed by the
  LiveKit server's clock, and the time their camera, screen share and microphone were on adds
  to the stay's usage and shows in its events (video_start, video_end, …). LiveKit redelivers
  webhooks and may deliver them out of order, or drop a join altogether: a stay is still
  recorded once, with the right times.

  Background:
    Given a bootcamp whose LiveKit server sends its webhooks to sessionmeter

  Scenario: A bootcamp day: 40 participants, webhooks twice and out of order
    Given 40 participants join room "day-1" over the first 10 minutes
    And 10 of them share their screen for 30 minutes
    And every participant leaves after 5 hours
    When each webhook arrives twice and the day's webhooks arrive in reverse order
    Then room "day-1" has 40 stays, all completed
    And every stay in room "day-1" lasted 5 hours
    And the watch time of room "day-1" is 200 participant-hours
    And the stays in room "day-1" add up to 300 minutes of screen share

  Scenario: A participant whose join was dropped is still recorded when they leave
    Given participant "ana" joined room "day-1" 30 minutes ago but that webhook was dropped
    When the webhook saying "ana" left room "day-1" now arrives
    Then "ana" stayed in room "day-1" for 30 minutes

  Scenario: When the room finishes, the stays still open end with it, and so do their cameras
    Given participants "ben" and "cy" joined room "day-1" an hour ago
    And "ben" turned his camera on when he joined
    When room "day-1" finishes
    Then room "day-1" has 2 stays, all completed
    And every stay in room "day-1" lasted 1 hours
    And the stays in room "day-1" add up to 60 minutes of video
    And the events of "ben"'s stay say when his camera went on and off

  Scenario: A participant's own leaving replaces the room's end when its webhook arrives late
    Given participants "ben" and "cy" joined room "day-1" an hour ago
    And "ben" turned his camera on when he joined
    And "ben" left room "day-1" 20 minutes ago but that webhook is delayed
    When room "day-1" finishes
    And the delayed webhook arrives
    Then "ben" stayed in room "day-1" for 40 minutes
    And "cy" stayed in room "day-1" for 60 minutes
    And the stays in room "day-1" add up to 40 minutes of video

  Scenario: A webhook that is not signed by the bootcamp's LiveKit server changes nothing
    When a webhook signed with another secret says "mallory" joined room "day-1"
    Then it is refused as unauthorized
    And room "day-1" has 0 stays, all completed

  Scenario: Reconciliation ends a stay whose `left` was dropped where it was last seen in the room
    Given the bootcamp's LiveKit server answers at a URL sessionmeter knows
    And participants "ana" and "ben" joined room "day-1" an hour ago
    And the LiveKit server lists "ana" and "ben" in room "day-1"
    And sessionmeter asks the LiveKit server who is in its rooms
    And 10 minutes pass
    And "ben" leaves room "day-1" but that webhook is dropped
    And 20 minutes pass
    When sessionmeter asks the LiveKit server who is in its rooms
    Then "ana"'s stay is still active, last seen just now
    And "ben"'s stay ended completed 30 minutes ago, reconciled
