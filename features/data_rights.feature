@data_rights
Feature: Forgetting a person, removing a webinar, keeping sessions only so long
  A viewer may ask to be forgotten; a team may delete a webinar and its log; a tenant may keep
  sessions only for a while. What was charged or sold is never lost with them: the books must
  balance, so a charged session stays, without anything that says who it was.

  Background:
    Given replays are charged 1 credit a minute
    And "ana" has 100 credits
    And the platform treats the attribute "email" as personal

  Scenario: A viewer who asks to be forgotten is forgotten, and the books still balance
    Given "ana" watched a replay of "w-1" for 10 minutes, with email "ana@example.com" and store "S12"
    And during it "ana" answered the poll "which city?" with "Seoul"
    And "ben" watched a replay of "w-1" for 5 minutes, with email "ben@example.com" and store "S12"
    When "ana" asks to be forgotten
    Then 1 session and 1 event were erased
    And no session and no ledger entry of "ana" are found any more
    And her session still counts 10 minutes and its charge of 10 credits, under a pseudonym
    And her session holds no address, no browser, no email and no poll answer, and still store "S12"
    And the pseudonym's balance is 90 credits, the sum of its ledger
    And the session of "ben" still holds his email
    When "ana" asks to be forgotten again
    Then nothing was erased

  Scenario: A deleted webinar's log goes, but not what was charged
    Given "ana" watched a replay of "w-9" for 10 minutes, with email "ana@example.com" and store "S12"
    And 2 anonymous viewers watched "w-9" live
    And a viewer watched "w-1" live
    When the operator deletes the webinar "w-9"
    Then 2 sessions and their events are gone
    And the replay of "ana" stays on her account with its charge of 10 credits, erased of the rest
    And "ana" has 90 credits left
    And the session on "w-1" is still there

  Scenario: Sessions are kept as long as the tenant says, except what was charged
    Given the platform keeps sessions 30 days
    And a viewer watched "w-1" live
    And "ana" watched a replay of "w-1" for 10 minutes, with email "ana@example.com" and store "S12"
    When 31 days pass and retention runs
    Then the live viewer's session is gone
    And the replay of "ana" is still there, with its charge of 10 credits
