@rollups
Feature: Rollups add up each hour and day, and the cost model prices plans from them
  A bootcamp runs its own LiveKit server and wants to know what a plan will cost in traffic
  before selling it. sessionmeter rolls the rooms' sessions and the media server's snapshots
  up into hours and days, and fits "GB per video-minute" (and per user-hour, and CPU per
  user) over the hours, stating how many hours it used and how well the line fits. A
  prediction prints its arithmetic, so that a slip in the inputs shows.

  Background:
    Given a bootcamp whose LiveKit server sends its webhooks to sessionmeter
    And yesterday 40 participants joined room "day-1" at 09:00 with their cameras on
    And 20 of them left at 12:00 and the others at 14:00
    And 10 of them shared their screen from 10:00 to 10:30
    And the LiveKit server's webhooks arrived twice and out of order
    And the media server reported every 10 minutes, sending 0.14 GB per video-minute and using 1 % CPU per participant

  Scenario: The day's rollup adds up the room and the server
    When the operator rolls up the usage since yesterday morning
    Then yesterday's rollup counts 40 sessions started and 40 ended in room "day-1"
    And yesterday's rollup counts 160 participant-hours, 9600 video-minutes and 300 screen-share minutes
    And yesterday's traffic was 1344 GB and the peak was 40 concurrent users
    And the hour from 10:00 counts 2400 video-minutes and 300 screen-share minutes
    And rolling up again changes none of these figures

  Scenario: The cost model prices a plan and shows its arithmetic
    When the operator rolls up the usage since yesterday morning
    And an admin asks the cost model what 50 users watching 5 hours a day for 22 days need
    Then the model finds 0.14 GB per video-minute over 5 hours, a near-perfect fit
    And 1 % CPU per concurrent user
    And it predicts 330,000 video-minutes and about 46.2 TB of traffic, showing how

  Scenario: Too little data, and the model says so instead of inventing a number
    When the operator rolls up the usage since yesterday morning
    And an admin asks the cost model about the hour from 10:00 only
    Then the model declines to fit GB per video-minute, saying it needs at least 3 hours
