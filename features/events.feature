@events
Feature: Events are counted once, and lost ones are visible
  Kiosks and apps report what happened in numbered batches. Each number counts once, however
  often it is sent, and so does everything it used; a number that never arrives shows up as a
  gap. A bad event is reported on its own and does not hold back the rest of its batch.

  Background:
    Given photo-booth kiosk "booth-3" has a guest session running

  Scenario: A kiosk retries a batch after a network failure and nothing is counted twice
    When the kiosk reports events 1 to 5, each taking 1 photo that costs 0.1 USD to analyse
    And the network fails before the kiosk hears back, so it reports events 1 to 5 again
    Then the session has 5 events
    And the session used 5 photos and exactly 0.5 USD of analysis
    And the retry was recognised as 5 duplicates

  Scenario: A lost event shows up as a gap, and a late one fills it
    When the kiosk reports events 1, 2, 3, 6 and 7
    Then the session shows events 4 to 5 as missing
    When event 4 arrives late
    Then the session shows only event 5 as missing

  Scenario: One bad event does not sink its batch
    When the kiosk reports events 1 to 3, but event 2 carries no time
    Then events 1 and 3 are stored
    And event 2 is reported as invalid

  Scenario: After the guest leaves, a retry is still recognised and new events are refused
    Given the kiosk has reported events 1 and 2
    And the guest has left
    When a minute later the kiosk reports events 1 to 3
    Then events 1 and 2 are recognised as duplicates
    And event 3 is refused because the session has ended

  Scenario: A batch larger than the team allows is refused whole
    When the kiosk reports 101 events in one batch
    Then the batch is refused as too large
    And the session has 0 events

  Scenario: The photo analysis results are summarised as shares
    When the kiosk reports 20 analysis results: 1 red, 4 yellow and 15 green
    Then the results are 5% red, 20% yellow and 75% green
