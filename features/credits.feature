@credits
Feature: A counseling recording is charged once, when it ends
  An AI counseling app prices each recording when it ends, by its length, and records the
  charge as one entry in the counselor's ledger. Retries never charge twice; a failed or
  cancelled recording costs nothing. With the soft policy a counselor may finish a session
  that takes the balance below zero, and an admin is told; with the hard policy a counselor
  below the minimum cannot start.

  Background:
    Given the counseling app charges 2 credits a minute for a recording, rounded up
    And counselor "dr-kim" has 100 credits

  Scenario: A recording is priced at its end and recorded once in the ledger
    When "dr-kim" records for 12 minutes and 30 seconds
    Then "dr-kim" is charged 25 credits
    And the ledger of "dr-kim" holds one charge, for that recording
    And "dr-kim" has 75 credits left

  Scenario: The app retries the end of a recording and nothing is charged twice
    When "dr-kim" records for 10 minutes
    And the app sends the end of that recording 3 more times
    Then "dr-kim" has 80 credits left

  Scenario Outline: A recording that fails or is cancelled costs nothing
    When a recording of "dr-kim" ends <status> after <minutes> minutes
    Then "dr-kim" has 100 credits left

    Examples:
      | status    | minutes |
      | failed    | 10      |
      | cancelled | 5       |

  Scenario: With the soft policy a counselor finishes past zero and an admin is told
    Given counselor "dr-lee" has 10 credits
    When "dr-lee" records for 30 minutes
    Then "dr-lee" is charged 60 credits
    And the charge says the balance went below zero
    And an admin sees an alert about "dr-lee"

  Scenario: With the hard policy a counselor below the minimum cannot start
    Given the counseling app stops recordings that start with fewer than 20 credits
    And counselor "dr-cho" has 10 credits
    When "dr-cho" tries to start a recording
    Then the recording is refused for too few credits: 10 of the 20 needed
