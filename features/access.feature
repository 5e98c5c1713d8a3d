@access
Feature: Keys: who may do what, a device that keeps to itself, a leaked key stopped
  Every key belongs to one tenant and has a role. An ingest key is held by a browser page, a
  kiosk or a device, so anyone can read it out of the page: it records visits and telemetry but
  reads nothing back and moves no money. A product's back end holds an app key, which also reads
  and settles; the operator holds an admin key, which also prices, configures and issues keys.

  Scenario: What each key may do
    Then the keys may do this:
      | action                           | ingest  | app     | admin   |
      | record a visit                   | allowed | allowed | allowed |
      | read back a visit by its id      | allowed | allowed | allowed |
      | list everyone's visits           | refused | allowed | allowed |
      | read a subject's credits         | refused | allowed | allowed |
      | register a resource              | refused | allowed | allowed |
      | settle a sale                    | refused | allowed | allowed |
      | grant credits                    | refused | refused | allowed |
      | change the settings              | refused | refused | allowed |
      | read a report                    | refused | refused | allowed |
      | issue a key                      | refused | refused | allowed |

  Scenario: A page's key cannot spend anyone's credits
    A browser's claim about who it is cannot be trusted: with the page's key alone, anyone could
    start a counseling session for dr-kim and end it with a huge meter.

    Given counseling is charged 2 credits a minute
    And counselor "dr-kim" has 100 credits
    When a page starts a counseling session for "dr-kim" with its own key
    Then it is refused: "sessions of kind counseling are billed or limited"
    When the counseling app's back end starts the session for "dr-kim" with its app key
    And 10 minutes pass
    And the back end ends the session
    Then counselor "dr-kim" has 80 credits left

  Scenario: A kiosk's key keeps to its own kiosk
    Given kiosk "booth-1" holds a key for itself alone
    When a customer starts a session on "booth-1" with the kiosk's key
    Then the session is active
    When kiosk "booth-1" tries to start a session on "booth-2"
    Then it is refused: "scoped to other resources than booth-2"
    When kiosk "booth-1" reports an error of "booth-2"
    Then it is refused: "scoped to other resources than booth-2"
    When kiosk "booth-1" reports an error of its own
    Then the operator sees 1 error of "booth-1"

  Scenario: A leaked key is revoked and stops working
    Given the billing back end holds an app key named "billing"
    When the operator revokes the key "billing"
    Then the back end's next request is refused: "the API key was revoked"
    And the operator's list of keys shows "billing" revoked, and no secret

  Scenario: A key that sends too fast is told when to retry, and nothing is lost
    Given each key may send 5 requests a second
    When a page sends 12 batches of 10 events at once, retrying each refused one when told
    Then some batches were told to retry after 1 second
    And the visit holds all 120 events, each once

  Scenario: Another tenant's visits are not there, whatever the key
    Given a customer starts a session on "booth-1" with the kiosk's key
    Then another tenant's key does not find the session
