@kiosk
Feature: A day of a small fleet of photo kiosks, read back from what the kiosks report
  Besides their customers' sessions, photo kiosks report what went wrong (errors), how long
  things took (performance) and what they sold (sales). Each record is stored once by the id the
  kiosk gave it, however often and however late it is sent. From these an operator reads the day
  back: one fault seen on many kiosks and builds as one, with the sales it lost; how fast each
  app version captures and prints; what was sold, settled and refunded, never adding two
  currencies together.

  Background:
    Given a small fleet of photo kiosks:
      | kiosk   | app version |
      | booth-1 | 1.4.2       |
      | booth-2 | 1.5.0       |
      | booth-3 | 1.5.0       |

  Scenario: A customer picks a frame, takes photos, pays by card and prints
    Given a customer starts a session on "booth-1"
    When 1 minute in, the customer picks the frame "cherry blossom"
    And 2 minutes in, the customer takes 4 photos, captured in 850, 900, 950 and 1200 ms
    And 4 minutes in, the customer pays 18000 KRW by card
    And 5 minutes in, the photos print in 42 seconds
    And 6 minutes in, the customer leaves
    Then the session is completed, 6 minutes long, and its events tell the visit:
      | minute | event        | label          |
      | 1      | frame_chosen | cherry blossom |
      | 2      | photo_taken  | 1              |
      | 2      | photo_taken  | 2              |
      | 2      | photo_taken  | 3              |
      | 2      | photo_taken  | 4              |
      | 4      | paid         | card           |
      | 5      | printed      |                |
    And the session's sale is 18000 KRW by card, waiting for settlement
    And the performance of "booth-1" reads:
      | measured | count | p50 ms | max ms |
      | capture  | 4     | 900    | 1200   |
      | print    | 1     | 42000  | 42000  |

  Scenario: A printer jam on two builds is one fault in the error report, with the sales it lost
    The two builds crash at different lines, on different print jobs: the report still sees one
    fault. Running out of paper is another fault of the same printer.

    When the printer jams while a customer waits for the prints, and the customer walks away:
      | kiosk   | crash at line | print job | sale lost |
      | booth-1 | 212           | 7f3a9c21  | 18000 KRW |
      | booth-2 | 238           | 0e4b2d77  | 12000 KRW |
    And a customer starts a session on "booth-3"
    And 3 minutes in, the printer runs out of paper
    Then the error report reads, most frequent first:
      | fault        | code      | times | kiosks | sessions | app versions       | worst   | sales lost | estimated loss |
      | PrinterError | JAM       | 2     | 2      | 2        | 1.4.2: 1, 1.5.0: 1 | fatal   | 2          | 30000 KRW      |
      | PrinterError | PAPER_OUT | 1     | 1      | 1        | 1.5.0: 1           | warning | 0          |                |

  Scenario: The operator in Seoul reads the faults per day of Seoul, split at midnight there
    Seoul's day starts at its midnight, 15:00 UTC the day before: a jam at 23:50 and another at
    00:10 happen on the same UTC day, yet on two days of the operator's calendar. Each day's row
    counts that day's faults alone.

    Given the operator's kiosks stand in Seoul
    And the kiosks reported these faults, in Seoul's time:
      | kiosk   | day          | at    | fault        | severity |
      | booth-1 | two days ago | 22:00 | paper jam    | error    |
      | booth-2 | two days ago | 23:50 | paper jam    | fatal    |
      | booth-3 | yesterday    | 00:10 | paper jam    | error    |
      | booth-3 | yesterday    | 00:20 | out of paper | warning  |
      | booth-1 | yesterday    | 09:00 | out of paper | warning  |
    Then the error report per day reads, oldest day first, then most frequent first:
      | day          | code      | times | kiosks | worst   |
      | two days ago | JAM       | 2     | 2      | fatal   |
      | yesterday    | PAPER_OUT | 2     | 2      | warning |
      | yesterday    | JAM       | 1     | 1      | error   |
    And the error report reads, most frequent first:
      | code      | times | kiosks | worst   |
      | JAM       | 3     | 3      | fatal   |
      | PAPER_OUT | 2     | 2      | warning |

  Scenario: Capture is slow on the new version: the median hides it, the 95th percentile shows it
    When the kiosks capture photos in these times:
      | kiosk   | photos | each in |
      | booth-1 | 18     | 800 ms  |
      | booth-1 | 2      | 1000 ms |
      | booth-2 | 17     | 850 ms  |
      | booth-2 | 3      | 3900 ms |
      | booth-3 | 18     | 840 ms  |
      | booth-3 | 2      | 4200 ms |
    Then the capture times per app version read:
      | app version | count | p50 ms | p95 ms | max ms |
      | 1.4.2       | 20    | 800    | 1000   | 1000   |
      | 1.5.0       | 40    | 850    | 3900   | 4200   |

  Scenario: The card acquirer's settlement batch settles the day's card sales; cash stays pending
    Given the day's sales:
      | sale   | kiosk   | paid      | by   |
      | S-1001 | booth-1 | 18000 KRW | card |
      | S-1002 | booth-1 | 12000 KRW | cash |
      | S-2001 | booth-2 | 15000 KRW | card |
      | S-3001 | booth-3 | 18000 KRW | card |
    When the card acquirer's settlement batch "B-1203" settles the day's card sales
    Then the day's sales stand:
      | sale   | settlement | batch  |
      | S-1001 | settled    | B-1203 |
      | S-1002 | pending    |        |
      | S-2001 | settled    | B-1203 |
      | S-3001 | settled    | B-1203 |
    And the sales report by kiosk reads:
      | kiosk   | currency | sales | net   | settled | pending |
      | booth-1 | KRW      | 2     | 30000 | 18000   | 12000   |
      | booth-2 | KRW      | 1     | 15000 | 15000   | 0       |
      | booth-3 | KRW      | 1     | 18000 | 18000   | 0       |
    And sale "S-1001" cannot go back to pending: it says it is settled

  Scenario: A refund is a sale of its own, gives back at most what is left, and currencies never mix
    Given the day's sales:
      | sale   | kiosk   | paid      | by   |
      | S-1001 | booth-1 | 18000 KRW | card |
      | S-1002 | booth-1 | 15.5 USD  | card |
      | S-2001 | booth-2 | 12000 KRW | cash |
    When later that day, refund "R-1001" gives back 6000 KRW of sale "S-1001", as one of its three prints came out blank
    And refund "R-1002" would give back 13000 KRW of sale "S-1001"
    Then it is refused: only 12000 KRW of sale "S-1001" is left to give back
    And the sales of the session of sale "S-1001" are, newest first:
      | sale   | status    | refund of | net   |
      | R-1001 | refunded  | S-1001    | 6000  |
      | S-1001 | completed |           | 18000 |
    And the sales report by kiosk reads:
      | kiosk   | currency | sales | net   | refunded |
      | booth-1 | KRW      | 1     | 18000 | 6000     |
      | booth-1 | USD      | 1     | 15.5  | 0        |
      | booth-2 | KRW      | 1     | 12000 | 0        |

  Scenario: A kiosk offline for an hour sends everything late, after the session ended, and each record counts once
    Given a customer starts a session on "booth-3"
    And the kiosk loses its network
    When 1 minute in, the customer picks the frame "stars"
    And 2 minutes in, the customer takes 3 photos, captured in 900, 950 and 1000 ms
    And 3 minutes in, the customer pays 12000 KRW in cash
    And 4 minutes in, the printer runs out of paper
    And 5 minutes in, the photos print in 40 seconds
    And 6 minutes in, the customer leaves
    And an hour later the network comes back, and the kiosk sends the customer's exit, then everything else it kept
    Then the session is completed, 6 minutes long, and its events tell the visit:
      | minute | event        | label |
      | 1      | frame_chosen | stars |
      | 2      | photo_taken  | 1     |
      | 2      | photo_taken  | 2     |
      | 2      | photo_taken  | 3     |
      | 3      | paid         | cash  |
      | 5      | printed      |       |
    And the kiosk's records are all stored, and counted in the reports:
      | record  | count |
      | events  | 6     |
      | errors  | 1     |
      | metrics | 4     |
      | sales   | 1     |
    When the kiosk sends everything it kept again, as it never heard back
    Then the kiosk is told each record was already stored and its exit is a replay, and nothing is added
