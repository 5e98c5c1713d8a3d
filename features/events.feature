Feature: Events are counted once, and lost ones are visible
  Kiosks and apps report what happened in numbered batches. Each number counts once, however
  often it is sent, and a number that never arrives shows up as a gap.

  Background:
    Given photo-booth kiosk "booth-3" has a guest session running

  Scenario: A kiosk retries a batch after a network failure and nothing is counted twice
    When the kiosk reports events 1 to 5, each taking 1 photo
    And the network fails before the kiosk hears back, so it reports events 1 to 5 again
    Then the session has 5 events
    And the session used 5 photos
    And the retry was recognised as 5 duplicates

  Scenario: A lost event shows up as a gap
    When the kiosk reports events 1, 2, 3, 6 and 7
    Then the session shows events 4 to 5 as missing

  Scenario: One bad event does not sink its batch
    When the kiosk reports events 1 to 3, but event 2 carries no time
    Then events 1 and 3 are stored
    And event 2 is reported as invalid
