@trials
Feature: A free trial stops at its limit and points to the upgrade
  An exam-prep app lets free users upload 1 PDF a month and practise each PDF twice, in
  practice or mock-exam sessions; a session counts when it starts. The third start is refused
  with the trial's status and the upgrade link. Users who bought the certification pass
  practise without limit until their exam date, then are back on the free plan. Sessions of
  kinds the plan does not name are never limited. The sessions a trial counts are kept, however
  long the app keeps the others.

  Background:
    Given the exam-prep app's free plan allows 1 PDF a month and 2 practice sessions per PDF
    And the certification pass practises without limit
    And the upgrade page is "https://exam.example/upgrade"

  Scenario: A free user practises a PDF twice, and the third start asks for an upgrade
    Given free user "mina" uploaded PDF "biology-1"
    When "mina" starts a practice session on "biology-1"
    And "mina" starts a mock exam on "biology-1"
    Then the trial of "mina" on "biology-1" has 0 sessions remaining
    When "mina" starts a practice session on "biology-1"
    Then the start is refused because the free trial is used up, pointing to the upgrade page

  Scenario: A free user may upload one PDF a month
    Given free user "mina" uploaded PDF "biology-1"
    When "mina" uploads PDF "biology-2"
    Then the upload is refused because this month's quota of 1 PDF is used

  Scenario: The certification pass lifts the limit until the exam, then the user is free again
    Given user "jun" bought the certification pass until an exam 30 days from now
    When "jun" starts 3 practice sessions on "chemistry-1"
    Then all 3 sessions started
    When the exam date has passed
    Then "jun" is on the "free" plan again

  Scenario: Sessions of kinds the plan does not name are never limited
    When "mina" watches webinar "exam-tips" 3 times
    Then all 3 sessions started

  Scenario: Deleting old sessions does not give a free user her trial back
    Given the app keeps sessions 30 days
    And free user "mina" practised "biology-1" twice
    And "mina" watched webinar "exam-tips"
    When 31 days pass and retention runs
    Then her webinar is gone and her practice sessions are kept
    And the trial of "mina" on "biology-1" has 0 sessions remaining
    When "mina" starts a practice session on "biology-1"
    Then the start is refused because the free trial is used up, pointing to the upgrade page

  Scenario: An admin reads back the plans and a subject's subscription history
    Given user "jun" bought the certification pass until an exam 30 days from now
    And user "jun" bought the certification pass until an exam 60 days from now
    When an admin reads back the plans
    Then the plans are:
      | plan          | default | unlimited | sessions per PDF | PDFs a month |
      | certification | no      | yes       |                  |              |
      | free          | yes     | no        | 2                | 1            |
    And the subscription history of "jun" lists the passes until the exams in 60 and 30 days, newest first

  Scenario: The team reads how the free trial went: who ran out, who then paid, what was refused
    Given free user "mina" uploaded PDF "biology-1"
    When "mina" starts 3 practice sessions on "biology-1"
    And "mina" uploads PDF "biology-2"
    And "ben" starts 3 practice sessions on "chemistry-1"
    And "sora" starts a practice session on "physics-1"
    And user "mina" bought the certification pass until an exam 30 days from now
    And "mina" starts a practice session on "biology-1"
    And an admin reads the trial report of the last 30 days
    Then the trial report says:
      | figure                              | value |
      | free users who practised            | 3     |
      | free practice sessions used         | 5     |
      | average free sessions per user      | 1.667 |
      | users who used up their free trial  | 2     |
      | free users who then bought the pass | 1     |
      | conversion rate                     | 0.333 |
    And the refused starts were:
      | reason                         | starts |
      | the free trial was used up     | 2      |
      | the month's PDF quota was used | 1      |
      | not enough credits             | 0      |
